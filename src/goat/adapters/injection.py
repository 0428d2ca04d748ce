"""Where adapters go in a model and how they get there: target selection, injection, removal,
and which parameters train (PEFT's tuner ``inject_adapter`` / ``_mark_only_adapters_as_trainable``).

LoRA-MoE layers (:mod:`goat.adapters.layers`) are built here; single adapters come from peft
(:mod:`goat.adapters.peft_layers`, imported only when a model gets one). Injection is all or
nothing: every layer's adapter is built before any is attached, and a failure leaves the model's
layers as they were.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from tqdm.auto import tqdm

from goat.adapters.config import PEFT_METHODS, GoatConfig
from goat.adapters.layers import FullMoELinear, LoraMoELinear, MoELinear
from goat.adapters.quantization import is_quantized
from goat.adapters.single import SingleAdapterLayer

AdaptedLayer = MoELinear | SingleAdapterLayer
ADAPTED_LAYER_TYPES = (MoELinear, SingleAdapterLayer)


# ------------------------------------------------------------------------ targets
def _matches(name: str, patterns: list[str] | str) -> bool:
    if isinstance(patterns, str):
        return re.fullmatch(patterns, name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.endswith("." + p) or f".{p}." in f".{name}" for p in prefixes)


def _model_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Named modules, an adapted layer counted as one module (its base layer and adapters not listed)."""
    found: dict[str, nn.Module] = {}

    def walk(module: nn.Module, name: str) -> None:
        found[name] = module
        if isinstance(module, ADAPTED_LAYER_TYPES):
            return
        for child_name, child in module.named_children():
            walk(child, f"{name}.{child_name}" if name else child_name)

    walk(model, "")
    return found


def find_target_layers(model: nn.Module, config: GoatConfig) -> list[str]:
    """Names of the ``nn.Linear`` layers ``config`` adapts (already adapted ones included), validated.

    Raises ``ValueError`` for a target name that matches nothing, a target that is not an
    ``nn.Linear``, or a layer too small for rank ``r``.
    """
    modules = _model_modules(model)
    skip = list(config.exclude_modules) + list(config.modules_to_save)
    linear_names = [
        n for n, m in modules.items() if isinstance(m, (nn.Linear, *ADAPTED_LAYER_TYPES)) and n and not _under(n, skip)
    ]
    if config.target_modules is None:
        targets = linear_names
    else:
        targets = [n for n in linear_names if _matches(n, config.target_modules)]
        wanted = [config.target_modules] if isinstance(config.target_modules, str) else config.target_modules
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in linear_names})
        for pattern in wanted:
            hits = [
                n
                for n in modules
                if n and _matches(n, [pattern] if isinstance(config.target_modules, list) else pattern)
            ]
            if not hits:
                raise ValueError(
                    f"target_modules entry {pattern!r} matches no module of {type(model).__name__}; "
                    f"its nn.Linear names end in: {', '.join(suffixes)}."
                )
            wrong = [n for n in hits if n not in linear_names and not _under(n, skip)]
            if wrong:
                raise ValueError(
                    f"target_modules entry {pattern!r} matches {wrong[0]!r}, a {type(modules[wrong[0]]).__name__}; "
                    "only nn.Linear layers can be adapted — name the Linear layers inside it instead."
                )
    if not targets:
        raise ValueError("target_modules selects no nn.Linear layer; check target_modules/exclude_modules.")
    if config.method != "full_moe":
        for name in targets:
            m, n = modules[name].out_features, modules[name].in_features
            if config.r > min(m, n):
                raise ValueError(
                    f"r={config.r} exceeds min(out, in) = {min(m, n)} of layer {name!r}; lower r or "
                    "exclude that layer via exclude_modules."
                )
    return targets


def adapted_layer_names(model: nn.Module) -> list[str]:
    """Names of the layers of ``model`` that carry adapters."""
    return [n for n, m in _model_modules(model).items() if isinstance(m, ADAPTED_LAYER_TYPES)]


# ---------------------------------------------------------------------- injection
def _layer_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + index)


def _inject_moe(
    model: nn.Module, config: GoatConfig, targets: list[str], *, init_weights: bool, adapter_name: str
) -> None:
    """Build every layer's adapter first, then attach them all (a failing init leaves the model as it was)."""
    layer_cls = FullMoELinear if config.method == "full_moe" else LoraMoELinear
    if config.method == "full_moe" and any(is_quantized(base_layer(model.get_submodule(n))) for n in targets):
        raise ValueError(
            "method='full_moe' trains E full-precision copies of every adapted weight, which defeats a "
            "4-bit/8-bit base; use a LoRA method (goat, molora, ...) on a quantized base, or load it unquantized."
        )
    built = []
    for index, name in enumerate(tqdm(targets, desc=f"init {config.method}", disable=not init_weights, leave=False)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = getattr(parent, child)
        wrapper = layer if isinstance(layer, MoELinear) else layer_cls(layer)
        adapter = wrapper.make_adapter(config)
        if init_weights:
            adapter.initialize(config, _layer_generator(config.seed, index), wrapper.base_layer)
        built.append((parent, child, wrapper, adapter))
    for parent, child, wrapper, adapter in built:
        wrapper.attach(adapter_name, adapter)
        setattr(parent, child, wrapper)


def inject(model: nn.Module, config: GoatConfig, *, init_weights: bool, adapter_name: str) -> list[str]:
    """Add adapter ``adapter_name`` to ``model``; on failure the model's layers are left as they were."""
    if config.method == "full":
        return []
    targets = find_target_layers(model, config)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        if config.method in PEFT_METHODS:
            from goat.adapters.peft_layers import inject_single_adapter  # loads peft

            inject_single_adapter(model, config, targets, init_weights=init_weights, adapter_name=adapter_name)
        else:
            _inject_moe(model, config, targets, init_weights=init_weights, adapter_name=adapter_name)
    except Exception:
        remove_adapter(model, adapter_name)
        for name, param in model.named_parameters():
            param.requires_grad_(flags.get(name, False))
        raise
    for name in targets:  # new modules start in training mode; follow the model's (eval after from_pretrained)
        model.get_submodule(name).train(model.training)
    return targets


def remove_adapter(model: nn.Module, adapter_name: str) -> None:
    """Delete ``adapter_name`` from every layer; a layer left without adapters becomes its base layer again."""
    for name in adapted_layer_names(model):
        layer = model.get_submodule(name)
        if isinstance(layer, MoELinear):
            if adapter_name in layer.adapters:
                layer.delete_adapter(adapter_name)
            empty = len(layer.adapters) == 0
        else:
            if adapter_name in layer._get_available_adapters():
                layer.delete_adapter(adapter_name)
                layer.initial_factors.pop(adapter_name, None)
            empty = not layer._get_available_adapters()
        if empty:
            replace_with_base(model, name)


def replace_with_base(model: nn.Module, name: str) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, base_layer(model.get_submodule(name)))


def saved_module_params(model: nn.Module, config: GoatConfig) -> dict[str, nn.Parameter]:
    """Parameters of ``config.modules_to_save``, by name (trained in full alongside the adapter)."""
    if not config.modules_to_save:
        return {}
    params = {}
    for name, module in _model_modules(model).items():
        if name and _matches(name, list(config.modules_to_save)):
            params.update({f"{name}.{p}": param for p, param in module.named_parameters()})
    return params


def set_trainable(model: nn.Module, config: GoatConfig, adapter_name: str) -> None:
    """Only adapter ``adapter_name``'s parameters, and its ``modules_to_save``, are trainable."""
    if config.method == "full":
        model.requires_grad_(True)
        return
    model.requires_grad_(False)
    for name in adapted_layer_names(model):
        layer = model.get_submodule(name)
        if isinstance(layer, MoELinear):
            if adapter_name in layer.adapters:
                layer.adapters[adapter_name].requires_grad_(True)
            continue
        for layer_name in layer.adapter_layer_names:
            parts = getattr(layer, layer_name)
            if adapter_name in parts:
                parts[adapter_name].requires_grad_(True)
    for param in saved_module_params(model, config).values():
        param.requires_grad_(True)


def base_layer(layer: nn.Module) -> nn.Module:
    """The frozen linear layer inside an adapted layer (a plain layer is its own)."""
    if isinstance(layer, MoELinear):
        return layer.base_layer
    return layer.get_base_layer() if isinstance(layer, SingleAdapterLayer) else layer


def remove_adapter_layers(model: nn.Module) -> None:
    """Replace every adapted layer by its base layer (the adapters go with it)."""
    for name in adapted_layer_names(model):
        replace_with_base(model, name)
