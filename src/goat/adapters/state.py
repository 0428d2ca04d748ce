"""An adapter's tensors in and out of a live model: the keys it is saved under, the shapes a model
expects, and the checks a load runs before it changes anything (the files are :mod:`goat.adapters.io`'s)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from goat.adapters import io
from goat.adapters.config import ADAPTER, GoatConfig
from goat.adapters.injection import base_layer, find_target_layers, inject, saved_module_params
from goat.adapters.layers import MoELinear


def adapter_tensors(
    model: nn.Module, adapter_name: str, config: GoatConfig, targets: list[str]
) -> dict[str, tuple[str | None, torch.Tensor]]:
    """``{saved key: (parameter name in model or None, live tensor)}`` of one adapter."""
    if config.method == "full":
        return {name: (name, param) for name, param in model.named_parameters()}
    tensors: dict[str, tuple[str | None, torch.Tensor]] = {}
    for name in targets:
        layer = model.get_submodule(name)
        if isinstance(layer, MoELinear):
            items, live_prefix = layer.adapters[adapter_name].saved_tensors(), f"{name}.adapters.{adapter_name}."
        else:
            items, live_prefix = layer.saved_tensors(adapter_name), f"{name}."
        for key, (pname, tensor) in items.items():
            tensors[f"{name}.{key}"] = (None if pname is None else live_prefix + pname, tensor)
    for name, param in saved_module_params(model, config).items():
        tensors[name] = (name, param)
    return tensors


def expected_shapes(base_model: nn.Module, config: GoatConfig, targets: list[str]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor an adapter of ``config`` on ``base_model`` holds, computed on a
    meta-device stand-in of the target layers: ``base_model`` is not touched."""
    if config.method == "full":
        return {name: full_shape(p) for name, p in base_model.named_parameters()}
    stand_in = nn.Module()
    for name in targets:
        base = base_layer(base_model.get_submodule(name))
        parent = stand_in
        for part in name.split(".")[:-1]:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        linear = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None, device="meta")
        parent.add_module(name.rsplit(".", 1)[-1], linear)
    layer_config = dataclasses.replace(config, target_modules=list(targets), modules_to_save=[], exclude_modules=[])
    inject(stand_in, layer_config, init_weights=False, adapter_name=ADAPTER)
    shapes = {key: tuple(t.shape) for key, (_, t) in adapter_tensors(stand_in, ADAPTER, layer_config, targets).items()}
    shapes.update({name: full_shape(p) for name, p in saved_module_params(base_model, config).items()})
    return shapes


def full_shape(tensor: torch.Tensor) -> tuple[int, ...]:
    """A tensor's shape, also for a parameter DeepSpeed ZeRO-3 has partitioned (whose local shape is 0)."""
    return tuple(getattr(tensor, "ds_shape", tensor.shape))


def check_tensors(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], directory: str | Path) -> None:
    """Every expected tensor present with its shape, nothing else: else one ``ValueError`` naming them."""
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or wrong:
        parts = [
            f"missing {missing[:3]}" if missing else "",
            f"unexpected {unexpected[:3]}" if unexpected else "",
            f"wrong shapes {wrong[:3]}" if wrong else "",
        ]
        raise ValueError(
            f"{directory} does not fit this model: {'; '.join(p for p in parts if p)}. Was it saved from "
            "another base model or configuration?"
        )


def load_tensors(
    model: nn.Module,
    adapter_name: str,
    config: GoatConfig,
    targets: list[str],
    state: dict[str, torch.Tensor],
    *,
    into_saved_modules: bool = True,
) -> None:
    """Copy ``state`` (keyed as :func:`adapter_tensors` keys it, already checked) into the live adapter.

    ``into_saved_modules=False``: leave the live ``modules_to_save`` alone (they belong to the active
    adapter while ``adapter_name`` is loaded as an inactive one)."""
    if config.method == "full":
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(state[name])
        return
    for name in targets:
        layer = model.get_submodule(name)
        prefix = f"{name}."
        mine = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if isinstance(layer, MoELinear):
            layer.adapters[adapter_name].load_saved(mine)
        else:
            layer.load_saved(adapter_name, mine)
    if not into_saved_modules:
        return
    with torch.no_grad():
        for name, param in saved_module_params(model, config).items():
            param.copy_(state[name])


def check_saved_adapter(
    base_model: nn.Module,
    config: GoatConfig,
    meta: dict[str, Any],
    state: dict[str, torch.Tensor],
    fingerprint: dict[str, Any] | None,
    directory: str | Path,
    strict: bool,
) -> list[str]:
    """Everything a load needs, checked before the model is changed; returns the target layers."""
    targets = [] if config.method == "full" else find_target_layers(base_model, config)
    if targets != meta["adapted_layers"]:
        raise ValueError(
            f"{directory} was saved on a model with different adapted layers ({len(meta['adapted_layers'])} vs "
            f"{len(targets)} here); is this the same base model?"
        )
    io.check_base(meta.get("base_fingerprint"), fingerprint, directory, strict)
    check_tensors(state, expected_shapes(base_model, config, targets), directory)
    return targets
