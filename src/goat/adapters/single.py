"""The single-adapter baselines' own part, without peft: GOAT's accessors on peft's LoRA layers, the
SVD priors of PiSSA and MiLoRA, and KaSA's auxiliary loss.

:class:`SingleAdapterLayer` is mixed into peft's LoRA layers by :mod:`goat.adapters.peft_layers`,
the one module that imports peft (it loads only when a model gets a single adapter). The frozen base
weight is never modified, as for the MoE methods (:mod:`goat.adapters.layers`): an SVD prior's
``W_res = s B0 A0`` (the adapter's initial product) is a frozen path subtracted in the forward, so
W0 stays exact for unload, disable and several adapters on one base.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from goat.adapters import init as goat_init
from goat.adapters.config import GoatConfig
from goat.adapters.quantization import dense_weight


class SingleAdapterLayer:
    """Mixin for peft's LoRA layers: GOAT's accessors and the frozen W_res path of SVD priors.

    ``initial_factors[adapter] = (A0 [r, n], B0 [m, r])``, the adapter's initial factors, for methods
    that move ``s B0 A0`` out of W0 (PiSSA, MiLoRA): the forward subtracts ``s B0 A0 x`` and merging
    adds ``s (B A - B0 A0)``, so the adapter is a plain LoRA on the *original* W0.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.initial_factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def active_name(self) -> str:
        return self.active_adapters[0]

    def expert_factors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(A [r, n], B [m, r])]``: one expert, the active adapter."""
        name = self.active_name
        return [(self.lora_A[name].weight, self.lora_B[name].weight)]

    def expert_scaling(self) -> list[float]:
        return [float(self.scaling[self.active_name])]

    @property
    def residual_A(self) -> torch.Tensor | None:
        """``A0`` of the active adapter (``W_res = residual_B @ residual_A``), None without an SVD prior."""
        factors = self.initial_factors.get(self.active_name)
        return None if factors is None else factors[0]

    @property
    def residual_B(self) -> torch.Tensor | None:
        """``s B0`` of the active adapter."""
        factors = self.initial_factors.get(self.active_name)
        return None if factors is None else self.scaling[self.active_name] * factors[1]

    def set_initial_factors(self, adapter: str, A0: torch.Tensor, B0: torch.Tensor) -> None:
        device = self.lora_A[adapter].weight.device
        self.initial_factors[adapter] = (
            A0.detach().to(device=device, dtype=torch.float32).clone(),
            B0.detach().to(device=device, dtype=torch.float32).clone(),
        )

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 (nn.Module's signature)
        super()._apply(fn, recurse)
        if getattr(self, "initial_factors", None):
            self.initial_factors = {name: (fn(A0), fn(B0)) for name, (A0, B0) in self.initial_factors.items()}
        return self

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if kwargs.get("adapter_names") is not None:
            raise ValueError("batches mixing adapters (adapter_names=) are not supported; use set_adapter().")
        result = super().forward(x, *args, **kwargs)
        if self.disable_adapters or self.merged:
            return result
        for name in self.active_adapters:
            if name in self.initial_factors and name in self.lora_A:
                A0, B0 = self.initial_factors[name]
                residual = F.linear(F.linear(x.to(A0.dtype), A0), B0) * self.scaling[name]
                result = result - residual.to(result.dtype)
        return result

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        """What merging adds to W0: ``s B A`` minus the frozen ``s B0 A0`` of an SVD prior."""
        delta = super().get_delta_weight(adapter)
        if adapter in self.initial_factors:
            A0, B0 = self.initial_factors[adapter]
            delta = delta - (self.scaling[adapter] * B0 @ A0).to(device=delta.device, dtype=delta.dtype)
        return delta

    def saved_tensors(self, adapter: str) -> dict[str, tuple[str | None, torch.Tensor]]:
        """``{key: (parameter name or None, tensor)}`` of adapter ``adapter``, keyed as stock peft saves
        them (``lora_A.weight``, ``lora_magnitude_vector``, ``lora_diag``), plus ``initial_lora_A/B``."""
        tensors = {}
        for pname, param in self.named_parameters():
            layer_name, _, rest = pname.partition(".")
            name, _, tail = rest.partition(".")
            if layer_name not in self.adapter_layer_names or name != adapter:
                continue
            key = layer_name if layer_name == "lora_magnitude_vector" or not tail else f"{layer_name}.{tail}"
            tensors[key] = (pname, param)
        if adapter in self.initial_factors:
            A0, B0 = self.initial_factors[adapter]
            tensors["initial_lora_A"], tensors["initial_lora_B"] = (None, A0), (None, B0)
        return tensors

    def load_saved(self, adapter: str, tensors: dict[str, torch.Tensor]) -> None:
        """Copy tensors keyed as :meth:`saved_tensors` keys them into adapter ``adapter``."""
        with torch.no_grad():
            for key, (_, param) in self.saved_tensors(adapter).items():
                if not key.startswith("initial_"):
                    param.copy_(tensors[key])
        if "initial_lora_A" in tensors:
            self.set_initial_factors(adapter, tensors["initial_lora_A"], tensors["initial_lora_B"])


def peft_scaling_args(config: GoatConfig) -> tuple[float, bool]:
    """(lora_alpha, use_rslora) giving peft the scaling s that ``config`` asks for."""
    rule = config.resolved_scaling
    if config.authors_svd_baselines and config.method == "pissa":
        rule = 2.0  # the authors' code forces s = 2 for PiSSA
    if rule == "rs":
        return config.lora_alpha, True
    if rule == "alpha":
        return config.lora_alpha, False
    return float(rule) * config.r, False  # a number: alpha = s * r so that alpha / r = s


def has_svd_prior(config: GoatConfig) -> bool:
    """True for the single adapters that start from SVD triplets of W0 (and carry ``s B0 A0``)."""
    return config.method in ("pissa", "milora")


def prior_slices(config: GoatConfig, h: int, generator: torch.Generator) -> tuple[list[int], int]:
    """(first singular index of each slice, slice width) of a single SVD-initialised LoRA.

    PiSSA: the top r triplets; MiLoRA: the bottom r; ``config.segment = i``: the block
    ``[i r, (i+1) r)`` (Fig. 1); ``'spread'``: GOAT's O slices (eq. 13) with E = num_experts.
    """
    if config.segment == "spread":
        d = config.r // config.num_experts
        return goat_init.segment_starts(h, d, config.num_experts, "spread"), d
    if config.segment is not None:
        if (config.segment + 1) * config.r > h:
            raise ValueError(
                f"segment={config.segment} needs (segment + 1) * r = {(config.segment + 1) * config.r} <= "
                f"min(out, in) = {h}; with r={config.r} the last segment is {h // config.r - 1}."
            )
        return [config.segment * config.r], config.r
    init = "principal" if config.method == "pissa" else "minor"
    return goat_init.segment_starts(h, config.r, 1, init, generator), config.r


def svd_prior_init(layer: SingleAdapterLayer, config: GoatConfig, generator: torch.Generator, adapter: str) -> None:
    """PiSSA/MiLoRA prior: A, B from the singular triplets that :func:`prior_slices` selects.

    ``B = U' Σ'^½ / sqrt(sρ')``, ``A = Σ'^½ V'ᵀ / sqrt(sρ')``, so ``s B A = U' Σ' V'ᵀ / ρ'`` is the
    part of W0 moved into the adapter (``W_res``); ``ρ' = 1`` as in the PiSSA/MiLoRA papers,
    ``ρ' = ρ`` with ``authors_svd_baselines``.
    """
    weight = dense_weight(layer.get_base_layer())
    m, n = weight.shape
    rho = config.rho if config.authors_svd_baselines else 1.0
    s = float(layer.scaling[adapter])
    U, S, Vh = goat_init.svd_float32(weight)
    starts, width = prior_slices(config, min(m, n), generator)
    A, B = goat_init.expert_svd_factors(U, S, Vh, starts, width, torch.full((len(starts),), s), rho)
    A, B = A.reshape(config.r, n), B.permute(1, 0, 2).reshape(m, config.r)  # slices side by side
    with torch.no_grad():
        layer.lora_A[adapter].weight.copy_(A)
        layer.lora_B[adapter].weight.copy_(B)
    layer.set_initial_factors(adapter, A, B)


def kasa_regularization(model: nn.Module) -> torch.Tensor | None:
    """KaSA's auxiliary loss (its paper eq. 9-11) of the active adapters, summed over layers; None without KaSA."""
    layers = [
        m
        for m in model.modules()
        if isinstance(m, SingleAdapterLayer)
        and hasattr(m, "lora_diag")
        and m.active_name in m.lora_diag
        and not m.disable_adapters
    ]
    if not layers:
        return None
    from peft.tuners.lora import KasaConfig  # a model holding KaSA layers has imported peft already
    from peft.tuners.lora.variants import _kasa_layer_regularization_loss

    beta, gamma = KasaConfig().beta, KasaConfig().gamma
    return torch.stack([_kasa_layer_regularization_loss(m, m.active_name, beta, gamma) for m in layers]).sum()
