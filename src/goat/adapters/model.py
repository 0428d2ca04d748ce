""":class:`GoatModel`, the wrapper around a model with adapters, and its constructors
(:func:`get_goat_model`, :func:`load_goat_model`), as PEFT's ``PeftModel`` and ``get_peft_model``.

A :class:`GoatModel` holds one or more named adapters on one base model, one of them active, in
PEFT's sense (``add_adapter``, ``set_adapter``, ``delete_adapter``, ``disable_adapter``,
``unload``, ``merge_and_unload``). The base weights are never modified (W_res is a frozen forward
path, :mod:`goat.adapters.layers`), which makes switching, disabling and unloading exact.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from goat.adapters import aux_loss, card, io, svd_cache
from goat.adapters.config import ADAPTER, PEFT_METHODS, GoatConfig
from goat.adapters.injection import (
    ADAPTED_LAYER_TYPES,
    AdaptedLayer,
    adapted_layer_names,
    inject,
    remove_adapter,
    remove_adapter_layers,
    saved_module_params,
    set_trainable,
)
from goat.adapters.io import read_adapter
from goat.adapters.layers import MoELinear
from goat.adapters.quantization import keep_training_layout
from goat.adapters.state import adapter_tensors, check_saved_adapter, check_tensors, full_shape, load_tensors


def _refuse_adapted(model: nn.Module, fix: str) -> None:
    """``ValueError`` if ``model`` already holds adapters (ours or another peft model's)."""
    peft_tuners = sys.modules.get("peft.tuners.tuners_utils")  # without peft loaded no model holds its layers
    if isinstance(model, GoatModel):
        raise ValueError(f"this is already a GoatModel with adapters {list(model.adapter_configs)}; {fix}")
    ours = [n for n, m in model.named_modules() if isinstance(m, ADAPTED_LAYER_TYPES)]
    if ours:
        raise ValueError(f"{type(model).__name__} already holds adapter layers ({len(ours)}, e.g. {ours[0]!r}); {fix}")
    foreign = (
        []
        if peft_tuners is None
        else [n for n, m in model.named_modules() if isinstance(m, peft_tuners.BaseTunerLayer)]
    )
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
    ``svd_cache_dir``: read/write the base weights' SVDs there (:mod:`goat.adapters.svd_cache`; e.g.
    ``svd_cache.default_cache_dir()``), so re-adapting the same base model skips them; a hit
    returns the factors exactly as first computed. (peft's own PiSSA init does not use it.)
    ``model`` may be quantized (:mod:`goat.adapters.quantization`). It must not hold adapters already.
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
    fingerprint = io.base_fingerprint(model, list(config.modules_to_save))
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    saved_modules = saved_module_params(model, config).items()
    originals = {n: p.detach().to("cpu", copy=True) for n, p in saved_modules if not p.is_meta}
    targets = inject(model, config, init_weights=init_weights, adapter_name=adapter_name)
    return GoatModel(
        model,
        config,
        targets,
        adapter_name=adapter_name,
        base_fingerprint=fingerprint,
        original_requires_grad=flags,
        original_saved_modules=originals,
    )


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
        set_trainable(base_model, config, adapter_name)
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
        print(
            f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
        )

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
        cls,
        model: nn.Module,
        model_id: str | Path,
        adapter_name: str = ADAPTER,
        *,
        is_trainable: bool = False,
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
            fingerprint = io.base_fingerprint(self.model, list(config.modules_to_save))
            saved_modules = self._snapshot_originals(config)
        with svd_cache.caching(svd_cache_dir):
            targets = inject(self.model, config, init_weights=True, adapter_name=adapter_name)
        self._register(adapter_name, config, targets, fingerprint, saved_modules)

    def load_adapter(self, directory: str | Path, adapter_name: str, *, strict: bool = True) -> None:
        """Load a saved adapter as another, inactive adapter named ``adapter_name`` (checked before any change)."""
        meta, state = read_adapter(directory, strict=strict)
        config = GoatConfig.from_dict(meta["goat_config"])
        self._check_new_adapter(adapter_name, config)
        with self.disable_adapter():
            fingerprint = io.base_fingerprint(self.model, list(config.modules_to_save))
            saved_modules = self._snapshot_originals(config)
        targets = check_saved_adapter(self.model, config, meta, state, fingerprint, directory, strict)
        inject(self.model, config, init_weights=False, adapter_name=adapter_name)
        # the new adapter's modules_to_save are held aside until it is activated: the live ones are the active adapter's
        load_tensors(self.model, adapter_name, config, targets, state, into_saved_modules=False)
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
        set_trainable(self.model, self.goat_config, adapter_name)
        aux_loss.mirror_into_model_config(self.model, self.goat_config)

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter; deleting the active one activates the first remaining one."""
        if adapter_name not in self.adapter_configs:
            raise ValueError(f"no adapter named {adapter_name!r}; this model holds {list(self.adapter_configs)}.")
        if len(self.adapter_configs) == 1:
            raise ValueError(f"{adapter_name!r} is the only adapter; unload() returns the base model without it.")
        if adapter_name == self.active_adapter:
            self.set_adapter(next(n for n in self.adapter_configs if n != adapter_name))
        remove_adapter(self.model, adapter_name)
        for registry in (
            self.adapter_configs,
            self.adapter_targets,
            self.base_fingerprints,
            self._inactive_saved_modules,
        ):
            registry.pop(adapter_name, None)

    def _check_new_adapter(self, adapter_name: str, config: GoatConfig) -> None:
        config.validate()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", adapter_name or ""):
            raise ValueError(f"adapter name {adapter_name!r} must be letters, digits, '_' or '-'.")
        if adapter_name in self.adapter_configs:
            raise ValueError(
                f"an adapter named {adapter_name!r} exists already; delete_adapter() it or pick another name."
            )
        kinds = {_layer_kind(c) for c in self.adapter_configs.values()}
        if "kasa" in (config.method, *(c.method for c in self.adapter_configs.values())):
            raise ValueError(
                "method='kasa' truncates the shared base weights in place, so it cannot share a model "
                "with another adapter; load each onto its own copy of the base model."
            )
        if kinds != {_layer_kind(config)}:
            raise ValueError(
                f"adapter {adapter_name!r} (method={config.method!r}) cannot share this model with adapters of "
                f"methods {sorted({c.method for c in self.adapter_configs.values()})}: one model holds adapters of "
                "one kind — peft single adapters (lora, rslora, dora, pissa, milora), LoRA-MoE adapters "
                "(goat, goat_plus, molora, hydralora, adamole) or full_moe; 'full' holds no adapter. "
                "Load it onto its own copy of the base model."
            )

    def _register(
        self, name: str, config: GoatConfig, targets: list[str], fingerprint: Any, saved_modules: dict
    ) -> None:
        self.adapter_configs[name] = config
        self.adapter_targets[name] = targets
        self.base_fingerprints[name] = fingerprint
        self._inactive_saved_modules[name] = saved_modules
        self._activate_layers()
        set_trainable(self.model, self.goat_config, self.active_adapter)
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
        for name, param in saved_module_params(self.model, config).items():
            self._original_saved_modules.setdefault(name, param.detach().to("cpu", copy=True))
        return {name: self._original_saved_modules[name].clone() for name in saved_module_params(self.model, config)}

    def _swap_saved_modules(self, adapter_name: str, values: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """Replace the live values of ``adapter_name``'s modules_to_save by ``values`` (None: the base's
        originals); returns the values they held. Exact copies: switching back restores them bit for bit."""
        params = saved_module_params(self.model, self.adapter_configs[adapter_name])
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
        remove_adapter_layers(self.model)
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
            raise ValueError(
                f"{action}: method='full' trains the base weights themselves; there is no adapter to remove."
            )
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
        tensors = adapter_tensors(self.model, self.active_adapter, self.goat_config, self.adapted_names)
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
        if (
            GoatConfig.from_dict(meta["goat_config"]) != self.goat_config
            or meta["adapted_layers"] != self.adapted_names
        ):
            raise ValueError(f"{directory} holds an adapter of another configuration than this model's.")
        io.check_base(meta.get("base_fingerprint"), self.base_fingerprints[self.active_adapter], directory, strict)
        live = adapter_tensors(self.model, self.active_adapter, self.goat_config, self.adapted_names)
        expected = {key: full_shape(tensor) for key, (_, tensor) in live.items()}
        check_tensors(state, expected, directory)
        load_tensors(self.model, self.active_adapter, self.goat_config, self.adapted_names, state)

    def save_pretrained(
        self, save_directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None, **_: Any
    ) -> None:
        """Write the active adapter: stock PEFT files for single-adapter methods, GOAT's for MoE methods
        (:mod:`goat.adapters.io`), and a model card (README.md).

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
            return card.upload_folder(folder, repo_id, private=private, token=token, commit_message=commit_message)

    def _write(
        self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None, repo_id: str | None = None
    ) -> None:
        record = io.write_adapter(directory, self._record(), self.adapter_state_dict(state_dict), self.model)
        text = card.model_card(
            record,
            stock_peft=io.is_stock_peft(self.goat_config),
            repo_id=repo_id,
            task_type=io.task_type(self.model),
            num_labels=getattr(getattr(self.model, "config", None), "num_labels", None),
        )
        (Path(directory) / "README.md").write_text(text)

    def _record(self) -> dict[str, Any]:
        base_config = getattr(self.model, "config", None)
        return {
            # a portable identity (Hub id, or "embedded"), never a path of this machine
            "base_model_name_or_path": card.portable_base_id(getattr(base_config, "_name_or_path", None)),
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
    fingerprint = io.base_fingerprint(base_model, list(config.modules_to_save))
    targets = check_saved_adapter(base_model, config, meta, state, fingerprint, directory, strict)
    model = attach_uninitialised_adapters(base_model, config, adapter_name)
    load_tensors(base_model, adapter_name, config, targets, state)
    model.base_fingerprints[adapter_name] = meta.get("base_fingerprint")
    return model
