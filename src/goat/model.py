"""Attach adapters to any PyTorch model, save/load them, and read the MoE losses and statistics.

A :class:`GoatModel` holds one or more named adapters on one base model, one of them active, in
PEFT's sense (``add_adapter``, ``set_adapter``, ``delete_adapter``, ``disable_adapter``,
``unload``, ``merge_and_unload``). The base weights are never modified (W_res is a frozen forward
path, :mod:`goat.layers`), which makes switching, disabling and unloading exact.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from goat import adapter_io, aux_loss, hub, svd_cache
from goat.adapter_io import read_adapter
from goat.baselines import ADAPTER, SingleAdapterLayer, inject_single_adapter
from goat.config import PEFT_METHODS, GoatConfig
from goat.layers import MOE_LAYER_TYPES, FullMoELinear, LoraMoELinear, MoELinear
from goat.quantization import is_quantized, keep_training_layout

logger = logging.getLogger(__name__)

CONFIG_NAME = adapter_io.CONFIG_NAME
WEIGHTS_NAME = adapter_io.WEIGHTS_NAME
AdaptedLayer = MoELinear | SingleAdapterLayer
ADAPTED_LAYER_TYPES = (MoELinear, SingleAdapterLayer)
__all__ = ["GoatModel", "get_goat_model", "load_goat_model", "read_adapter", "MOE_LAYER_TYPES"]


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
            hits = [n for n in modules if n and _matches(n, [pattern] if isinstance(config.target_modules, list) else pattern)]
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


def _inject_moe(model: nn.Module, config: GoatConfig, targets: list[str], *, init_weights: bool, adapter_name: str) -> None:
    """Build every layer's adapter first, then attach them all (a failing init leaves the model as it was)."""
    layer_cls = FullMoELinear if config.method == "full_moe" else LoraMoELinear
    if config.method == "full_moe" and any(is_quantized(_base_layer(model.get_submodule(n))) for n in targets):
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


def _inject(model: nn.Module, config: GoatConfig, *, init_weights: bool, adapter_name: str) -> list[str]:
    """Add adapter ``adapter_name`` to ``model``; on failure the model's layers are left as they were."""
    if config.method == "full":
        return []
    targets = find_target_layers(model, config)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        if config.method in PEFT_METHODS:
            inject_single_adapter(model, config, targets, init_weights=init_weights, adapter_name=adapter_name)
        else:
            _inject_moe(model, config, targets, init_weights=init_weights, adapter_name=adapter_name)
    except Exception:
        _remove_adapter(model, adapter_name)
        for name, param in model.named_parameters():
            param.requires_grad_(flags.get(name, False))
        raise
    for name in targets:  # new modules start in training mode; follow the model's (eval after from_pretrained)
        model.get_submodule(name).train(model.training)
    return targets


def _remove_adapter(model: nn.Module, adapter_name: str) -> None:
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
            _replace_with_base(model, name)


def _replace_with_base(model: nn.Module, name: str) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, _base_layer(model.get_submodule(name)))


def _saved_module_params(model: nn.Module, config: GoatConfig) -> dict[str, nn.Parameter]:
    """Parameters of ``config.modules_to_save``, by name (trained in full alongside the adapter)."""
    if not config.modules_to_save:
        return {}
    params = {}
    for name, module in _model_modules(model).items():
        if name and _matches(name, list(config.modules_to_save)):
            params.update({f"{name}.{p}": param for p, param in module.named_parameters()})
    return params


def _set_trainable(model: nn.Module, config: GoatConfig, adapter_name: str) -> None:
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
    for param in _saved_module_params(model, config).values():
        param.requires_grad_(True)


def _refuse_adapted(model: nn.Module, fix: str) -> None:
    """``ValueError`` if ``model`` already holds adapters (ours or another peft model's)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if isinstance(model, GoatModel):
        raise ValueError(f"this is already a GoatModel with adapters {list(model.adapter_configs)}; {fix}")
    ours = [n for n, m in model.named_modules() if isinstance(m, ADAPTED_LAYER_TYPES)]
    if ours:
        raise ValueError(f"{type(model).__name__} already holds adapter layers ({len(ours)}, e.g. {ours[0]!r}); {fix}")
    foreign = [n for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    if foreign:
        raise ValueError(
            f"{type(model).__name__} holds peft adapter layers ({len(foreign)}, e.g. {foreign[0]!r}); call the peft "
            "model's unload() (or merge_and_unload()) first and pass the model it returns."
        )


def get_goat_model(
    model: nn.Module, config: GoatConfig, *, svd_cache_dir: str | Path | None = None, adapter_name: str = ADAPTER
) -> GoatModel:
    """Adapt ``model`` in place according to ``config`` and wrap it in a :class:`GoatModel`.

    Only adapter and router parameters (and ``config.modules_to_save``) stay trainable.
    ``svd_cache_dir``: read/write the base weights' SVDs there (:mod:`goat.svd_cache`; e.g.
    ``svd_cache.default_cache_dir()``), so re-adapting the same base model skips them; a hit
    returns the factors exactly as first computed. (peft's own PiSSA init does not use it.)
    ``model`` may be quantized (:mod:`goat.quantization`). It must not hold adapters already.
    """
    config.validate()
    _refuse_adapted(model, "add another adapter with GoatModel.add_adapter(name, config), or call unload() first.")
    with svd_cache.caching(svd_cache_dir):
        return _adapt(model, config, init_weights=True, adapter_name=adapter_name)


def attach_uninitialised_adapters(model: nn.Module, config: GoatConfig, adapter_name: str = ADAPTER) -> GoatModel:
    """Adapter layers of the right shapes, with no initial values computed (no SVD, no W_res).

    The skeleton :func:`load_goat_model` fills from a checkpoint; enough to count parameters,
    including on the meta device.
    """
    config.validate()
    return _adapt(model, config, init_weights=False, adapter_name=adapter_name)


def _adapt(model: nn.Module, config: GoatConfig, *, init_weights: bool, adapter_name: str) -> GoatModel:
    """Inject the first adapter, recording what ``unload`` restores and the base fingerprint (from W0)."""
    fingerprint = adapter_io.base_fingerprint(model, list(config.modules_to_save))
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    saved_modules = _saved_module_params(model, config).items()
    originals = {n: p.detach().to("cpu", copy=True) for n, p in saved_modules if not p.is_meta}
    targets = _inject(model, config, init_weights=init_weights, adapter_name=adapter_name)
    return GoatModel(model, config, targets, adapter_name=adapter_name, base_fingerprint=fingerprint,
                     original_requires_grad=flags, original_saved_modules=originals)  # fmt: skip


def _base_layer(layer: nn.Module) -> nn.Module:
    """The frozen linear layer inside an adapted layer (a plain layer is its own)."""
    if isinstance(layer, MoELinear):
        return layer.base_layer
    return layer.get_base_layer() if isinstance(layer, SingleAdapterLayer) else layer


# ------------------------------------------------------------------ saved tensors
def _adapter_tensors(
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
    for name, param in _saved_module_params(model, config).items():
        tensors[name] = (name, param)
    return tensors


def _expected_shapes(base_model: nn.Module, config: GoatConfig, targets: list[str]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor an adapter of ``config`` on ``base_model`` holds, computed on a
    meta-device stand-in of the target layers: ``base_model`` is not touched."""
    if config.method == "full":
        return {name: _full_shape(p) for name, p in base_model.named_parameters()}
    stand_in = nn.Module()
    for name in targets:
        base = _base_layer(base_model.get_submodule(name))
        parent = stand_in
        for part in name.split(".")[:-1]:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        linear = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None, device="meta")
        parent.add_module(name.rsplit(".", 1)[-1], linear)
    layer_config = dataclasses.replace(config, target_modules=list(targets), modules_to_save=[], exclude_modules=[])
    _inject(stand_in, layer_config, init_weights=False, adapter_name=ADAPTER)
    shapes = {key: tuple(t.shape) for key, (_, t) in _adapter_tensors(stand_in, ADAPTER, layer_config, targets).items()}
    shapes.update({name: _full_shape(p) for name, p in _saved_module_params(base_model, config).items()})
    return shapes


def _full_shape(tensor: torch.Tensor) -> tuple[int, ...]:
    """A tensor's shape, also for a parameter DeepSpeed ZeRO-3 has partitioned (whose local shape is 0)."""
    return tuple(getattr(tensor, "ds_shape", tensor.shape))


def _check_tensors(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], directory: str | Path) -> None:
    """Every expected tensor present with its shape, nothing else: else one ``ValueError`` naming them."""
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {expected[k]})" for k in sorted(set(state) & set(expected))
             if tuple(state[k].shape) != expected[k]]  # fmt: skip
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
                 f"wrong shapes {wrong[:3]}" if wrong else ""]  # fmt: skip
        raise ValueError(
            f"{directory} does not fit this model: {'; '.join(p for p in parts if p)}. Was it saved from "
            "another base model or configuration?"
        )


def _load_tensors(
    model: nn.Module, adapter_name: str, config: GoatConfig, targets: list[str], state: dict[str, torch.Tensor],
    *, into_saved_modules: bool = True,
) -> None:
    """Copy ``state`` (keyed as :func:`_adapter_tensors` keys it, already checked) into the live adapter.

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
        mine = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if isinstance(layer, MoELinear):
            layer.adapters[adapter_name].load_saved(mine)
        else:
            layer.load_saved(adapter_name, mine)
    if not into_saved_modules:
        return
    with torch.no_grad():
        for name, param in _saved_module_params(model, config).items():
            param.copy_(state[name])


# ------------------------------------------------------------------------ wrapper
class GoatModel(nn.Module):
    """A model with adapters: forwards to ``base_model``; ``save_pretrained`` saves only the adapter.

    ``adapter_configs`` maps each adapter's name to its :class:`GoatConfig`; ``active_adapter`` is
    the one the forward runs. ``goat_config`` and ``adapted_names`` describe the active adapter.
    """

    def __init__(
        self,
        base_model: nn.Module,
        config: GoatConfig,
        adapted_names: list[str],
        *,
        adapter_name: str = ADAPTER,
        base_fingerprint: dict[str, Any] | None = None,
        original_requires_grad: dict[str, bool] | None = None,
        original_saved_modules: dict[str, torch.Tensor] | None = None,
    ):
        super().__init__()
        self.model = base_model
        self.adapter_configs: dict[str, GoatConfig] = {adapter_name: config}
        self.adapter_targets: dict[str, list[str]] = {adapter_name: list(adapted_names)}
        self.base_fingerprints: dict[str, dict[str, Any] | None] = {adapter_name: base_fingerprint}
        self.active_adapter = adapter_name
        # modules_to_save: their original values, and those of every inactive adapter (swapped in on switching)
        self._original_requires_grad = original_requires_grad or {}
        self._original_saved_modules = dict(original_saved_modules or {})
        self._inactive_saved_modules: dict[str, dict[str, torch.Tensor]] = {}
        _set_trainable(base_model, config, adapter_name)
        if adapted_names:
            _guard_base_saving(base_model)
        # outputs.loss = task loss + aux_loss_coef * L_b in training mode, whichever trainer runs the model (App. B)
        self._aux_loss_hooks = aux_loss.attach(base_model, self)
        aux_loss.mirror_into_model_config(base_model, config)  # TRL's trainers read the MoE settings there
        keep_training_layout(base_model)  # train -> eval -> train on a 4-bit CPU base keeps every gradient

    def get_base_model(self) -> nn.Module:
        """The model the adapters sit in (PEFT's ``get_base_model``): the transformers model, adapted in place."""
        return self.model

    @property
    def base_model(self) -> nn.Module:
        """As transformers defines it, which TRL reads: the wrapped model's backbone (``LlamaModel`` inside
        ``LlamaForCausalLM``; the model itself when it has no separate backbone). The whole wrapped model
        is :meth:`get_base_model`."""
        return getattr(self.model, "base_model", self.model)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    # ----------------------------------------------------------- the active adapter
    @property
    def goat_config(self) -> GoatConfig:
        return self.adapter_configs[self.active_adapter]

    @property
    def adapted_names(self) -> list[str]:
        return self.adapter_targets[self.active_adapter]

    @property
    def _hf_peft_config_loaded(self) -> bool:
        """Tells transformers' Trainer that trainable adapters sit on this (possibly quantized) model."""
        return True

    def adapted_layers(self) -> dict[str, AdaptedLayer]:
        return {name: self.model.get_submodule(name) for name in self.adapted_names}

    def trainable_parameter_count(self) -> tuple[int, int]:
        """(trainable, total) parameter counts, counting the frozen base weights once.

        A bitsandbytes 4-bit weight packs two values per byte of its storage, so it counts
        ``2 x bytes`` values, as PEFT counts it; a ZeRO-3 shard counts its full size.
        """
        params = {id(p): p for p in self.model.parameters()}.values()
        counts = [(_value_count(p), p.requires_grad) for p in params]
        return sum(n for n, trainable in counts if trainable), sum(n for n, _ in counts)

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """PEFT's name for :meth:`trainable_parameter_count`."""
        return self.trainable_parameter_count()

    def print_trainable_parameters(self) -> None:
        """Print the trainable and total parameter counts in PEFT's format."""
        trainable, total = self.trainable_parameter_count()
        print(f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}")

    @property
    def peft_config(self) -> dict[str, GoatConfig]:
        """Each adapter's config by name, as PEFT's ``peft_config``."""
        return self.adapter_configs

    @property
    def active_adapters(self) -> list[str]:
        """The adapters the forward runs (one), as PEFT's ``active_adapters``."""
        return [self.active_adapter]

    @classmethod
    def from_pretrained(
        cls, model: nn.Module, model_id: str | Path, adapter_name: str = ADAPTER, *, is_trainable: bool = False,
        strict: bool = True,
    ) -> GoatModel:
        """Load a saved adapter folder onto ``model``, as PEFT's ``PeftModel.from_pretrained`` (same
        arguments): :func:`load_goat_model`, then, unless ``is_trainable``, eval mode with the adapter frozen.
        ``model_id`` is a folder, or a Hub repository id fetched with ``huggingface_hub.snapshot_download``."""
        folder = Path(model_id)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(model_id)))
        loaded = load_goat_model(model, folder, adapter_name=adapter_name, strict=strict)
        if not is_trainable:
            loaded.eval()
            loaded.requires_grad_(False)
        return loaded

    # ------------------------------------------------------------- several adapters
    def add_adapter(self, adapter_name: str, config: GoatConfig, *, svd_cache_dir: str | Path | None = None) -> None:
        """Add and initialise another adapter (inactive until :meth:`set_adapter`), as in PEFT."""
        self._check_new_adapter(adapter_name, config)
        with self.disable_adapter():  # the fingerprint and the new adapter's modules_to_save see the base
            fingerprint = adapter_io.base_fingerprint(self.model, list(config.modules_to_save))
            saved_modules = self._snapshot_originals(config)
        with svd_cache.caching(svd_cache_dir):
            targets = _inject(self.model, config, init_weights=True, adapter_name=adapter_name)
        self._register(adapter_name, config, targets, fingerprint, saved_modules)

    def load_adapter(self, directory: str | Path, adapter_name: str, *, strict: bool = True) -> None:
        """Load a saved adapter as another, inactive adapter named ``adapter_name`` (checked before any change)."""
        meta, state = read_adapter(directory, strict=strict)
        config = GoatConfig.from_dict(meta["goat_config"])
        self._check_new_adapter(adapter_name, config)
        with self.disable_adapter():
            fingerprint = adapter_io.base_fingerprint(self.model, list(config.modules_to_save))
            saved_modules = self._snapshot_originals(config)
        targets = _check_saved_adapter(self.model, config, meta, state, fingerprint, directory, strict)
        _inject(self.model, config, init_weights=False, adapter_name=adapter_name)
        # the new adapter's modules_to_save are held aside until it is activated: the live ones are the active adapter's
        _load_tensors(self.model, adapter_name, config, targets, state, into_saved_modules=False)
        saved_modules = {name: state[name].detach().to("cpu", copy=True) for name in saved_modules}
        self._register(adapter_name, config, targets, meta.get("base_fingerprint"), saved_modules)

    def set_adapter(self, adapter_name: str) -> None:
        """Make ``adapter_name`` the adapter the forward runs (and the one trained, saved and loaded)."""
        if adapter_name not in self.adapter_configs:
            raise ValueError(f"no adapter named {adapter_name!r}; this model holds {list(self.adapter_configs)}.")
        if adapter_name == self.active_adapter:
            return
        self._inactive_saved_modules[self.active_adapter] = self._swap_saved_modules(self.active_adapter, None)
        self.active_adapter = adapter_name
        self._activate_layers()
        self._swap_saved_modules(adapter_name, self._inactive_saved_modules.pop(adapter_name, {}))
        _set_trainable(self.model, self.goat_config, adapter_name)
        aux_loss.mirror_into_model_config(self.model, self.goat_config)

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter; deleting the active one activates the first remaining one."""
        if adapter_name not in self.adapter_configs:
            raise ValueError(f"no adapter named {adapter_name!r}; this model holds {list(self.adapter_configs)}.")
        if len(self.adapter_configs) == 1:
            raise ValueError(f"{adapter_name!r} is the only adapter; unload() returns the base model without it.")
        if adapter_name == self.active_adapter:
            self.set_adapter(next(n for n in self.adapter_configs if n != adapter_name))
        _remove_adapter(self.model, adapter_name)
        for registry in (self.adapter_configs, self.adapter_targets, self.base_fingerprints, self._inactive_saved_modules):
            registry.pop(adapter_name, None)

    def _check_new_adapter(self, adapter_name: str, config: GoatConfig) -> None:
        config.validate()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", adapter_name or ""):
            raise ValueError(f"adapter name {adapter_name!r} must be letters, digits, '_' or '-'.")
        if adapter_name in self.adapter_configs:
            raise ValueError(f"an adapter named {adapter_name!r} exists already; delete_adapter() it or pick another name.")
        kinds = {_layer_kind(c) for c in self.adapter_configs.values()}
        if "kasa" in (config.method, *(c.method for c in self.adapter_configs.values())):
            raise ValueError("method='kasa' truncates the shared base weights in place, so it cannot share a model "
                             "with another adapter; load each onto its own copy of the base model.")  # fmt: skip
        if kinds != {_layer_kind(config)}:
            raise ValueError(
                f"adapter {adapter_name!r} (method={config.method!r}) cannot share this model with adapters of "
                f"methods {sorted({c.method for c in self.adapter_configs.values()})}: one model holds adapters of "
                "one kind — peft single adapters (lora, rslora, dora, pissa, milora), LoRA-MoE adapters "
                "(goat, goat_plus, molora, hydralora, adamole) or full_moe; 'full' holds no adapter. "
                "Load it onto its own copy of the base model."
            )

    def _register(self, name: str, config: GoatConfig, targets: list[str], fingerprint: Any, saved_modules: dict) -> None:
        self.adapter_configs[name] = config
        self.adapter_targets[name] = targets
        self.base_fingerprints[name] = fingerprint
        self._inactive_saved_modules[name] = saved_modules
        self._activate_layers()
        _set_trainable(self.model, self.goat_config, self.active_adapter)
        _guard_base_saving(self.model)

    def _activate_layers(self) -> None:
        """Point every adapted layer at ``active_adapter`` (peft makes a newly added adapter active)."""
        for name in adapted_layer_names(self.model):
            layer = self.model.get_submodule(name)
            if isinstance(layer, MoELinear):
                layer.active_adapter = self.active_adapter
            else:
                layer.set_adapter(self.active_adapter)

    def _snapshot_originals(self, config: GoatConfig) -> dict[str, torch.Tensor]:
        """Record the base values of ``config.modules_to_save`` (call with adapters disabled); returns a copy
        as the new adapter's starting values."""
        for name, param in _saved_module_params(self.model, config).items():
            self._original_saved_modules.setdefault(name, param.detach().to("cpu", copy=True))
        return {name: self._original_saved_modules[name].clone() for name in _saved_module_params(self.model, config)}

    def _swap_saved_modules(self, adapter_name: str, values: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """Replace the live values of ``adapter_name``'s modules_to_save by ``values`` (None: the base's
        originals); returns the values they held. Exact copies: switching back restores them bit for bit."""
        params = _saved_module_params(self.model, self.adapter_configs[adapter_name])
        held = {name: param.detach().to("cpu", copy=True) for name, param in params.items()}
        source = self._original_saved_modules if values is None else values
        with torch.no_grad():
            for name, param in params.items():
                if name in source:
                    param.copy_(source[name])
        return held

    # ------------------------------------------------------------- disable, unload
    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Inside the block the model is exactly the base model (adapters off, original modules_to_save)."""
        self._refuse_if("disable_adapter", base_weights_changed=True)
        flags = {n: p.requires_grad for n, p in self.model.named_parameters()}
        held = self._swap_saved_modules(self.active_adapter, None)
        layers = [self.model.get_submodule(n) for n in adapted_layer_names(self.model)]
        for layer in layers:
            if isinstance(layer, MoELinear):
                layer.disabled = True
            else:
                layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in layers:
                if isinstance(layer, MoELinear):
                    layer.disabled = False
                else:
                    layer.enable_adapters(True)
            self._swap_saved_modules(self.active_adapter, held)
            for name, param in self.model.named_parameters():
                param.requires_grad_(flags[name])

    def unload(self) -> nn.Module:
        """The base model without any adapter: adapted layers replaced by the original ones (W0 is
        bit-exact: it was never modified), modules_to_save and ``requires_grad`` flags as before adaptation."""
        self._refuse_if("unload", base_weights_changed=True)
        self._swap_saved_modules(self.active_adapter, None)
        return self._detach_base()

    def merge_and_unload(self) -> nn.Module:
        """The base model with the active single adapter merged into its weights (W0 + ΔW), as in PEFT.

        MoE adapters cannot be merged: each token is routed to its own experts.
        """
        config = self.goat_config
        if config.is_moe:
            raise ValueError(
                f"merge_and_unload: method={config.method!r} routes every token to its own top-{config.top_k} of "
                f"{config.num_experts} experts, so the adapter is no single weight update and cannot be folded "
                "into W0. Use unload() for the base model (W0 exact), or serve the adapter on its base: "
                "goat.load_goat_model(base, folder) and generate()."
            )
        for name in self.adapted_names:
            self.model.get_submodule(name).merge(adapter_names=[self.active_adapter])
        return self._detach_base(keep_requires_grad=config.method == "full")

    def _detach_base(self, keep_requires_grad: bool = False) -> nn.Module:
        for handle in self._aux_loss_hooks:
            handle.remove()
        aux_loss.remove_from_model_config(self.model)
        _remove_adapter_layers(self.model)
        if not keep_requires_grad:
            for name, param in self.model.named_parameters():
                param.requires_grad_(self._original_requires_grad.get(name, param.requires_grad))
        _unguard_base_saving(self.model)
        self.adapter_configs, self.adapter_targets, self.base_fingerprints = {}, {}, {}
        self._inactive_saved_modules = {}
        return self.model

    def _refuse_if(self, action: str, *, base_weights_changed: bool) -> None:
        methods = {c.method for c in self.adapter_configs.values()}
        if not self.adapter_configs:
            raise ValueError(f"{action}: this model holds no adapter any more (it was unloaded).")
        if "full" in methods:
            raise ValueError(f"{action}: method='full' trains the base weights themselves; there is no adapter to remove.")
        if base_weights_changed and "kasa" in methods:
            raise ValueError(
                f"{action}: method='kasa' truncated the base weights to W0 minus their r smallest singular "
                "components when the adapter was created (peft's KaSA), so the base cannot be restored here; "
                "reload the base model, or merge_and_unload() for the fine-tuned one."
            )

    # ------------------------------------------------------------------ save, load
    def adapter_state_dict(self, state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The active adapter's tensors (trainable ones, expert scalings, W_res factors or initial factors),
        keyed by base-model names.

        A non-empty ``state_dict`` of this wrapper supplies the trainable tensors instead of the live
        parameters: DeepSpeed ZeRO-3 hands the Trainer one, gathered, while its parameters are shards.
        """
        tensors = _adapter_tensors(self.model, self.active_adapter, self.goat_config, self.adapted_names)
        out = {}
        for key, (pname, tensor) in tensors.items():
            if state_dict and pname is not None:
                tensor = state_dict[f"model.{pname}"]
            out[key] = tensor.detach().cpu().contiguous()
        return out

    def load_trained_state(self, directory: str | Path, *, strict: bool = True) -> None:
        """Copy a saved adapter of this very configuration into the active adapter, in place (resuming training).

        Trainable tensors, scalings and W_res factors are copied, so an adapter initialised on other
        hardware (a slightly different SVD) continues exactly from the saved run.
        """
        meta, state = read_adapter(directory, strict=strict)
        if GoatConfig.from_dict(meta["goat_config"]) != self.goat_config or meta["adapted_layers"] != self.adapted_names:
            raise ValueError(f"{directory} holds an adapter of another configuration than this model's.")
        adapter_io.check_base(meta.get("base_fingerprint"), self.base_fingerprints[self.active_adapter], directory, strict)
        live = _adapter_tensors(self.model, self.active_adapter, self.goat_config, self.adapted_names)
        expected = {key: _full_shape(tensor) for key, (_, tensor) in live.items()}
        _check_tensors(state, expected, directory)
        _load_tensors(self.model, self.active_adapter, self.goat_config, self.adapted_names, state)

    def save_pretrained(
        self, save_directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None, **_: Any
    ) -> None:
        """Write the active adapter: stock PEFT files for single-adapter methods, GOAT's for MoE methods
        (:mod:`goat.adapter_io`), and a model card (README.md).

        ``state_dict``: see :meth:`adapter_state_dict`.
        """
        self._write(save_directory, state_dict)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload GOAT adapter",
    ) -> str:
        """Upload the active adapter's folder (as :meth:`save_pretrained` writes it, model card included)
        to the Hub repository ``repo_id``; returns the commit URL. The base model is never uploaded."""
        with tempfile.TemporaryDirectory() as folder:
            self._write(folder, None, repo_id=repo_id)
            return hub.upload_folder(folder, repo_id, private=private, token=token, commit_message=commit_message)

    def _write(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None, repo_id: str | None = None) -> None:
        record = adapter_io.write_adapter(directory, self._record(), self.adapter_state_dict(state_dict), self.model)
        card = hub.model_card(record, stock_peft=adapter_io.is_stock_peft(self.goat_config), repo_id=repo_id,
                              task_type=adapter_io.task_type(self.model),
                              num_labels=getattr(getattr(self.model, "config", None), "num_labels", None))  # fmt: skip
        (Path(directory) / "README.md").write_text(card)

    def _record(self) -> dict[str, Any]:
        base_config = getattr(self.model, "config", None)
        return {
            # a portable identity (Hub id, or "embedded"), never a path of this machine
            "base_model_name_or_path": hub.portable_base_id(getattr(base_config, "_name_or_path", None)),
            "goat_config": self.goat_config.to_dict(),
            "adapted_layers": self.adapted_names,
            "base_fingerprint": self.base_fingerprints[self.active_adapter],
        }


def _value_count(param: torch.Tensor) -> int:
    """Values a parameter holds: a 4-bit weight packs two per byte of storage; a ZeRO-3 shard counts in full."""
    count = param.numel() or getattr(param, "ds_numel", 0)
    if type(param).__name__ == "Params4bit":
        count *= 2 * param.element_size()
    return count


def _layer_kind(config: GoatConfig) -> str:
    if config.method in PEFT_METHODS:
        return "peft"
    return config.method if config.method in ("full", "full_moe") else "lora_moe"


def _remove_adapter_layers(model: nn.Module) -> None:
    """Replace every adapted layer by its base layer (the adapters go with it)."""
    for name in adapted_layer_names(model):
        _replace_with_base(model, name)


def _refusing(method: str, owner: str):  # noqa: ANN202
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            f"{owner}.{method}: this model holds GOAT adapter layers, so it would write them in place of its "
            "own weights. Save the adapter with GoatModel.save_pretrained(folder) / push_to_hub(repo); for the "
            "plain base model call GoatModel.unload() (W0 exact) or merge_and_unload() (single adapters) first."
        )

    return refuse


def _guard_base_saving(base_model: nn.Module) -> None:
    """The base model's own ``save_pretrained``/``push_to_hub`` raise while it holds adapters."""
    for method in ("save_pretrained", "push_to_hub"):
        if callable(getattr(type(base_model), method, None)):
            object.__setattr__(base_model, method, _refusing(method, type(base_model).__name__))


def _unguard_base_saving(base_model: nn.Module) -> None:
    for method in ("save_pretrained", "push_to_hub"):
        base_model.__dict__.pop(method, None)


# ---------------------------------------------------------------------- loading
def _check_saved_adapter(
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
    adapter_io.check_base(meta.get("base_fingerprint"), fingerprint, directory, strict)
    _check_tensors(state, _expected_shapes(base_model, config, targets), directory)
    return targets


def load_goat_model(
    base_model: nn.Module, directory: str | Path, *, adapter_name: str = ADAPTER, strict: bool = True
) -> GoatModel:
    """Restore a saved adapter onto ``base_model`` (in memory only; the checkpoint files are not written).

    ``base_model`` is a fresh, untouched model — or a :class:`GoatModel`, which then gets the adapter as
    another one named ``adapter_name`` (as PEFT's ``load_adapter``). Before anything is changed, the
    weights file is checked against its checksum, the saved config and every tensor shape against this
    model, and the base weights against the fingerprint of those the adapter was trained on; any
    mismatch raises and leaves ``base_model`` as it was (``strict=False``: checksum and fingerprint
    mismatches only warn). No SVD is recomputed: W_res comes from its stored factors (KaSA is the
    exception: peft truncates the base weight with its own SVD when the layer is created).
    """
    if isinstance(base_model, GoatModel):
        base_model.load_adapter(directory, adapter_name, strict=strict)
        return base_model
    _refuse_adapted(base_model, "pass the GoatModel itself to load another adapter onto it, or unload() it first.")
    meta, state = read_adapter(directory, strict=strict)
    config = GoatConfig.from_dict(meta["goat_config"])
    fingerprint = adapter_io.base_fingerprint(base_model, list(config.modules_to_save))
    targets = _check_saved_adapter(base_model, config, meta, state, fingerprint, directory, strict)
    model = attach_uninitialised_adapters(base_model, config, adapter_name)
    _load_tensors(base_model, adapter_name, config, targets, state)
    model.base_fingerprints[adapter_name] = meta.get("base_fingerprint")
    return model
