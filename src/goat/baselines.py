"""Single-adapter baselines over peft: lora, rslora, dora, pissa, milora, kasa.

peft implements LoRA (Hu et al.), rsLoRA (use_rslora), DoRA (use_dora), PiSSA
(init_lora_weights="pissa") and KaSA (kasa_config); we configure it and only add what peft lacks:
MiLoRA (PiSSA on the *minor* singular triplets) and the authors' shrunk PiSSA/MiLoRA priors.
Layers are peft's own ``lora.Linear`` extended with the read-only accessors of our contract.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import KasaConfig
from peft.tuners.lora import Linear as PeftLoraLinear
from peft.tuners.lora.variants import _kasa_layer_regularization_loss
from torch import nn

from goat import init as goat_init
from goat.config import GoatConfig

ADAPTER = "default"


class SingleLoraLinear(PeftLoraLinear):
    """peft's LoRA linear (behaviour unchanged) plus ``expert_factors``/``expert_scaling``.

    Holds ``residual_A``/``residual_B`` when the method moved part of W0 into the adapter
    (PiSSA, MiLoRA): the base weight is ``W0 - residual_B @ residual_A``.
    """

    residual_A: torch.Tensor | None = None
    residual_B: torch.Tensor | None = None

    def expert_factors(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(A [r, n], B [m, r])]``: one expert."""
        return [(self.lora_A[ADAPTER].weight, self.lora_B[ADAPTER].weight)]

    def expert_scaling(self) -> list[float]:
        return [float(self.scaling[ADAPTER])]


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


def lora_config_for(config: GoatConfig, target_names: list[str], *, init_weights: bool) -> LoraConfig:
    """The peft ``LoraConfig`` that implements ``config.method`` on exactly ``target_names``."""
    alpha, use_rslora = peft_scaling_args(config)
    peft_pissa = config.method == "pissa" and not config.authors_svd_baselines and config.segment is None
    lora_config = LoraConfig(
        r=config.r,
        lora_alpha=alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target_names,
        use_rslora=use_rslora,
        use_dora=config.method == "dora",
        init_lora_weights=("pissa" if peft_pissa and init_weights else True),
        kasa_config=KasaConfig() if config.method == "kasa" else None,
        bias="none",
    )
    lora_config._register_custom_module({nn.Linear: SingleLoraLinear})
    return lora_config


def inject_single_adapter(
    model: nn.Module, config: GoatConfig, target_names: list[str], *, init_weights: bool = True
) -> list[SingleLoraLinear]:
    """Replace every target with a peft LoRA layer configured for ``config.method``.

    With ``init_weights=False`` no SVD prior is computed (the weights are about to be loaded).
    """
    generator = torch.Generator().manual_seed(config.seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)  # peft draws lora_A from the global RNG
    try:
        inject_adapter_in_model(lora_config_for(config, target_names, init_weights=init_weights), model, ADAPTER)
    finally:
        torch.random.set_rng_state(torch_state)
    layers = [m for m in model.modules() if isinstance(m, SingleLoraLinear)]
    custom_svd = config.method == "milora" or (
        config.method == "pissa" and (config.authors_svd_baselines or config.segment is not None)
    )
    if init_weights and custom_svd:
        for layer in layers:
            svd_prior_init(layer, config, generator)
    return layers


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


def svd_prior_init(layer: SingleLoraLinear, config: GoatConfig, generator: torch.Generator) -> None:
    """PiSSA/MiLoRA prior: A, B from the singular triplets that :func:`prior_slices` selects.

    ``B = U' Σ'^½ / sqrt(sρ')``, ``A = Σ'^½ V'ᵀ / sqrt(sρ')`` and ``W <- W - s B A``;
    ``ρ' = 1`` as in the PiSSA/MiLoRA papers, ``ρ' = ρ`` with ``authors_svd_baselines``.
    """
    base = layer.get_base_layer()
    m, n = base.weight.shape
    rho = config.rho if config.authors_svd_baselines else 1.0
    s = layer.expert_scaling()[0]
    U, S, Vh = goat_init.svd_float32(base.weight)
    starts, width = prior_slices(config, min(m, n), generator)
    A, B = goat_init.expert_svd_factors(U, S, Vh, starts, width, torch.full((len(starts),), s), rho)
    A, B = A.reshape(config.r, n), B.permute(1, 0, 2).reshape(m, config.r)  # slices side by side
    with torch.no_grad():
        layer.lora_A[ADAPTER].weight.copy_(A)
        layer.lora_B[ADAPTER].weight.copy_(B)
        base.weight.sub_((s * B @ A).to(base.weight.dtype))
    layer.residual_A, layer.residual_B = A.clone(), s * B


def record_peft_pissa_residual(layer: SingleLoraLinear) -> None:
    """peft's PiSSA moved ``s B0 A0`` out of the base weight; remember those factors for saving."""
    A = layer.lora_A[ADAPTER].weight.detach().float().cpu().clone()
    B = layer.lora_B[ADAPTER].weight.detach().float().cpu().clone()
    layer.residual_A, layer.residual_B = A, layer.expert_scaling()[0] * B


def kasa_regularization(model: nn.Module) -> torch.Tensor | None:
    """KaSA's auxiliary loss (its paper eq. 9-11), summed over layers; None without KaSA layers."""
    losses = [
        _kasa_layer_regularization_loss(m, ADAPTER, KasaConfig().beta, KasaConfig().gamma)
        for m in model.modules()
        if isinstance(m, SingleLoraLinear) and hasattr(m, "lora_diag")
    ]
    return torch.stack(losses).sum() if losses else None
