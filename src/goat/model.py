"""Attach adapters to any PyTorch model, save/load them, and read the MoE losses and statistics."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from goat import svd_cache
from goat.baselines import SingleLoraLinear, inject_single_adapter, kasa_regularization, record_peft_pissa_residual
from goat.config import PEFT_METHODS, GoatConfig
from goat.layers import MOE_LAYER_TYPES, FullMoELinear, LoraMoELinear, Router

logger = logging.getLogger(__name__)

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT_VERSION = 1
AdaptedLayer = LoraMoELinear | FullMoELinear | SingleLoraLinear
ADAPTED_LAYER_TYPES = (*MOE_LAYER_TYPES, SingleLoraLinear)


# ------------------------------------------------------------------------ targets
def _matches(name: str, patterns: list[str] | str) -> bool:
    if isinstance(patterns, str):
        return re.fullmatch(patterns, name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.endswith("." + p) or f".{p}." in f".{name}" for p in prefixes)


def find_target_layers(model: nn.Module, config: GoatConfig) -> list[str]:
    """Names of the ``nn.Linear`` layers ``config`` adapts, validated.

    Raises ``ValueError`` for a target name that matches nothing, a target that is not an
    ``nn.Linear``, or a layer too small for rank ``r``.
    """
    modules = dict(model.named_modules())
    skip = list(config.exclude_modules) + list(config.modules_to_save)
    linear_names = [n for n, m in modules.items() if isinstance(m, nn.Linear) and not _under(n, skip)]
    if config.target_modules is None:
        targets = linear_names
    else:
        targets = [n for n in linear_names if _matches(n, config.target_modules)]
        wanted = [config.target_modules] if isinstance(config.target_modules, str) else config.target_modules
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in linear_names})
        for pattern in wanted:
            hits = [n for n in modules if n and _matches(n, [pattern] if isinstance(config.target_modules, list) else pattern)]
            if not hits:
                raise ValueError(
                    f"target_modules entry {pattern!r} matches no module of {type(model).__name__}; "
                    f"its nn.Linear names end in: {', '.join(suffixes)}."
                )
            wrong = [n for n in hits if not isinstance(modules[n], nn.Linear) and not _under(n, skip)]
            if wrong:
                raise ValueError(
                    f"target_modules entry {pattern!r} matches {wrong[0]!r}, a {type(modules[wrong[0]]).__name__}; "
                    "only nn.Linear layers can be adapted — name the Linear layers inside it instead."
                )
    if not targets:
        raise ValueError("target_modules selects no nn.Linear layer; check target_modules/exclude_modules.")
    if config.method != "full_moe":
        for name in targets:
            m, n = modules[name].weight.shape
            if config.r > min(m, n):
                raise ValueError(
                    f"r={config.r} exceeds min(out, in) = {min(m, n)} of layer {name!r}; lower r or "
                    "exclude that layer via exclude_modules."
                )
    return targets


# ---------------------------------------------------------------------- injection
def _layer_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + index)


def _inject_moe(model: nn.Module, config: GoatConfig, targets: list[str], *, init_weights: bool) -> None:
    layer_cls = FullMoELinear if config.method == "full_moe" else LoraMoELinear
    for index, name in enumerate(tqdm(targets, desc=f"init {config.method}", disable=not init_weights, leave=False)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = layer_cls(getattr(parent, child), config)
        if init_weights:
            layer.initialize(config, _layer_generator(config.seed, index))
        setattr(parent, child, layer)


def _set_trainable(model: nn.Module, config: GoatConfig) -> None:
    """Only adapter and router parameters, and ``modules_to_save``, are trainable."""
    if config.method == "full":
        model.requires_grad_(True)
        return
    model.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, ADAPTED_LAYER_TYPES):
            for pname, param in module.named_parameters():
                param.requires_grad_(not pname.startswith("base_layer."))
    for name, module in model.named_modules():
        if name and config.modules_to_save and _matches(name, list(config.modules_to_save)):
            module.requires_grad_(True)


def _inject(model: nn.Module, config: GoatConfig, *, init_weights: bool) -> list[str]:
    if config.method == "full":
        targets: list[str] = []
    else:
        targets = find_target_layers(model, config)
        if config.method in PEFT_METHODS:
            layers = inject_single_adapter(model, config, targets, init_weights=init_weights)
            if init_weights and config.method == "pissa" and not config.authors_svd_baselines:
                for layer in layers:
                    record_peft_pissa_residual(layer)
        else:
            _inject_moe(model, config, targets, init_weights=init_weights)
    _set_trainable(model, config)
    return targets


def get_goat_model(
    model: nn.Module, config: GoatConfig, *, svd_cache_dir: str | Path | None = None
) -> GoatModel:
    """Adapt ``model`` in place according to ``config`` and wrap it in a :class:`GoatModel`.

    Only adapter and router parameters (and ``config.modules_to_save``) stay trainable.
    ``svd_cache_dir``: read/write the base weights' SVDs there (:mod:`goat.svd_cache`; e.g.
    ``svd_cache.default_cache_dir()``), so re-adapting the same base model skips them; a hit
    returns the factors exactly as first computed. (peft's own PiSSA init does not use it.)
    """
    config.validate()
    with svd_cache.caching(svd_cache_dir):
        targets = _inject(model, config, init_weights=True)
    return GoatModel(model, config, targets)


def attach_uninitialised_adapters(model: nn.Module, config: GoatConfig) -> GoatModel:
    """Adapter layers of the right shapes, with no initial values computed (no SVD, no W_res).

    The skeleton :func:`load_goat_model` fills from a checkpoint; enough to count parameters,
    including on the meta device.
    """
    config.validate()
    return GoatModel(model, config, _inject(model, config, init_weights=False))


# ------------------------------------------------------------------------ wrapper
class GoatModel(nn.Module):
    """A model with adapters: forwards to ``base_model``; ``save_pretrained`` saves only the adapter."""

    def __init__(self, base_model: nn.Module, config: GoatConfig, adapted_names: list[str]):
        super().__init__()
        self.base_model = base_model
        self.goat_config = config
        self.adapted_names = adapted_names

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.base_model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base_model, name)

    def adapted_layers(self) -> dict[str, AdaptedLayer]:
        return {name: self.base_model.get_submodule(name) for name in self.adapted_names}

    def trainable_parameter_count(self) -> tuple[int, int]:
        """(trainable, total) parameter counts, counting the frozen base weights once."""
        params = {id(p): p for p in self.base_model.parameters()}.values()
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def adapter_state_dict(self, state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Trainable tensors, expert scalings and W_res factors, keyed by base-model names.

        A non-empty ``state_dict`` of this wrapper supplies the trainable tensors instead of the live
        parameters: DeepSpeed ZeRO-3 hands the Trainer one, gathered, while its parameters are shards.
        """
        state = {n: p.detach() for n, p in self.base_model.named_parameters() if p.requires_grad}
        if state_dict:
            state = {n: state_dict[f"base_model.{n}"] for n in state}
        for name, layer in self.adapted_layers().items():
            if isinstance(layer, LoraMoELinear):
                state[f"{name}.scalings"] = layer.scalings
            if layer.residual_A is not None:
                state[f"{name}.residual_A"] = layer.residual_A
                state[f"{name}.residual_B"] = layer.residual_B
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def load_trained_state(self, directory: str | Path) -> None:
        """Copy a saved adapter of this very configuration into this model, in place (resuming training).

        Trainable tensors and scalings are copied; where the saved W_res factors differ from the ones
        this model was initialised with (an SVD on other hardware), the base weight is moved from
        ``W0 - W_res(current)`` to ``W0 - W_res(saved)`` so the frozen weight matches the saved run.
        """
        meta, state = read_adapter(directory)
        if meta["goat_config"] != self.goat_config.to_dict() or meta["adapted_layers"] != self.adapted_names:
            raise ValueError(f"{directory} holds an adapter of another configuration than this model's.")
        residuals = {k: state.pop(k) for k in [k for k in state if k.endswith((".residual_A", ".residual_B"))]}
        live = {n: p for n, p in self.base_model.named_parameters() if p.requires_grad}
        for name in self.adapted_names:
            if isinstance(self.base_model.get_submodule(name), LoraMoELinear):
                live[f"{name}.scalings"] = self.base_model.get_submodule(name).scalings
        if set(state) != set(live):
            missing, extra = sorted(set(live) - set(state)), sorted(set(state) - set(live))
            raise ValueError(f"{directory}: tensors missing {missing[:3]}, unexpected {extra[:3]}.")
        with torch.no_grad():
            for key, tensor in state.items():
                live[key].copy_(tensor)
        for name, layer in self.adapted_layers().items():
            if f"{name}.residual_A" in residuals:
                _replace_residual(layer, residuals[f"{name}.residual_A"], residuals[f"{name}.residual_B"])

    def save_pretrained(
        self, save_directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None, **_: Any
    ) -> None:
        """Write ``adapter_config.json`` and ``adapter_model.safetensors`` (peft's file names).

        ``state_dict``: see :meth:`adapter_state_dict`.
        """
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        base_config = getattr(self.base_model, "config", None)
        meta = {
            "format_version": FORMAT_VERSION,
            "peft_type": "GOAT",
            "base_model_name_or_path": getattr(base_config, "_name_or_path", None),
            "goat_config": self.goat_config.to_dict(),
            "adapted_layers": self.adapted_names,
        }
        save_file(self.adapter_state_dict(state_dict), str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2))


def read_adapter(directory: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A saved adapter's metadata and tensors, keyed as :meth:`GoatModel.adapter_state_dict` keys them."""
    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_NAME}; pass the folder written by save_pretrained.")
    meta = json.loads((directory / CONFIG_NAME).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{directory}: adapter format {meta.get('format_version')} is not {FORMAT_VERSION}.")
    return meta, load_file(str(directory / WEIGHTS_NAME))


def load_goat_model(base_model: nn.Module, directory: str | Path) -> GoatModel:
    """Restore a saved adapter onto a fresh, untouched ``base_model`` (in memory only).

    No SVD is recomputed: W_res is re-applied from its stored factors. (KaSA is the exception:
    peft truncates the base weight with its own SVD when the layer is created.)
    """
    meta, state = read_adapter(directory)
    model = attach_uninitialised_adapters(base_model, GoatConfig.from_dict(meta["goat_config"]))
    targets = model.adapted_names
    if targets != meta["adapted_layers"]:
        raise ValueError(
            f"{directory} was saved on a model with different adapted layers; is this the same base model?"
        )
    residuals = {k: state.pop(k) for k in [k for k in state if k.endswith((".residual_A", ".residual_B"))]}
    model_state = base_model.state_dict()
    unknown = sorted(set(state) - set(model_state))
    if unknown:
        raise ValueError(f"{directory}: tensors {unknown[:3]} do not exist in this base model.")
    base_model.load_state_dict(state, strict=False)
    for name in targets:
        if f"{name}.residual_A" in residuals:
            layer = base_model.get_submodule(name)
            A, B = residuals[f"{name}.residual_A"], residuals[f"{name}.residual_B"]
            if isinstance(layer, LoraMoELinear):
                layer.subtract_residual(A, B)
            else:
                weight = layer.get_base_layer().weight
                with torch.no_grad():
                    weight.sub_((B @ A).to(device=weight.device, dtype=weight.dtype))
                layer.residual_A, layer.residual_B = A, B
    return model


def _replace_residual(layer: AdaptedLayer, residual_A: torch.Tensor, residual_B: torch.Tensor) -> None:
    """Make the frozen weight ``W0 - residual_B @ residual_A`` given that it holds ``W0 - (its current residual)``."""
    if (
        layer.residual_A is not None
        and torch.equal(layer.residual_A, residual_A.to(layer.residual_A.dtype))
        and torch.equal(layer.residual_B, residual_B.to(layer.residual_B.dtype))
    ):
        return
    weight = layer.get_base_layer().weight if isinstance(layer, SingleLoraLinear) else layer.base_layer.weight
    change = residual_B.float() @ residual_A.float()
    if layer.residual_A is not None:
        change -= layer.residual_B.float() @ layer.residual_A.float()
    with torch.no_grad():
        weight.sub_(change.to(device=weight.device, dtype=weight.dtype))
    layer.residual_A, layer.residual_B = residual_A.float().cpu(), residual_B.float().cpu()


# ------------------------------------------------------------ losses and statistics
def _routers(model: nn.Module) -> Iterator[tuple[str, Router]]:
    if isinstance(model, GoatModel):
        model = model.base_model
    for name, module in model.named_modules():
        if isinstance(module, Router):
            yield name.removesuffix(".router"), module


def balance_loss(model: nn.Module) -> torch.Tensor:
    """Sum over MoE layers of the last forward's L_b = sum_i f_i P_i (App. B, eq. 26-28).

    Perfectly uniform routing gives 1 per layer. (The authors' code computes k times this.)
    Returns a zero tensor for models without routers.
    """
    losses = [router.last_balance_loss for _, router in _routers(model)]
    if any(loss is None for loss in losses):
        raise RuntimeError("balance_loss(model) needs a forward pass first.")
    if not losses:
        return torch.zeros(())
    return torch.stack([loss.float() for loss in losses]).sum()


def auxiliary_loss(model: nn.Module, balance_coef: float) -> torch.Tensor:
    """What a method adds to the task loss: ``balance_coef * L_b`` (+ KaSA's own regularisers)."""
    loss = balance_coef * balance_loss(model)
    kasa = kasa_regularization(model)
    return loss if kasa is None else loss.to(kasa.device) + kasa


def routing_stats(model: nn.Module, *, reset: bool = False) -> dict[str, list[float]]:
    """Per-layer expert load fractions (sum to 1) over the forwards since the last reset."""
    stats = {}
    for name, router in _routers(model):
        counts = router.load_counts.float()
        total = counts.sum()
        stats[name] = (counts / total).tolist() if total > 0 else [0.0] * router.num_experts
        if reset:
            router.load_counts = torch.zeros_like(counts)
    return stats

