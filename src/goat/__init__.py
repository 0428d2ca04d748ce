"""GOAT: LoRA Mixture-of-Experts with SVD-segment priors and aligned scaling (ICML 2025).

Public API (the adapter library, :mod:`goat.adapters`)::

    config = goat.GoatConfig(method="goat", r=32, num_experts=8, top_k=2, target_modules=[...])
    model = goat.get_goat_model(model, config)   # adapters + routers trainable, W0 frozen (W_res a frozen path)
    model(**batch, labels=labels).loss   # training mode: task loss + config.aux_loss_coef * L_b (goat.add_aux_loss)
    loss = goat.add_aux_loss(loss_from_logits, model)   # trainers that compute their own loss (DPO, KTO)
    model.save_pretrained("adapter/"); goat.load_goat_model(fresh_base, "adapter/")
    model.add_adapter("b", other_config); model.set_adapter("b"); model.disable_adapter(); model.unload()
    base = AutoModelForCausalLM.from_pretrained(name, quantization_config=goat.quantization.quantization_config("4bit"))

``import goat`` loads nothing but this file: each name loads its module on first use, and peft only
loads when a model gets a single-adapter baseline (lora, pissa, ...).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

# public name -> the module of goat.adapters that defines it
_PUBLIC = {
    "METHODS": "config",
    "GoatConfig": "config",
    "AdapterIntegrityError": "io",
    "read_adapter": "io",
    "add_aux_loss": "aux_loss",
    "GoatModel": "model",
    "attach_uninitialised_adapters": "model",
    "get_goat_model": "model",
    "load_goat_model": "model",
    "find_target_layers": "injection",
    "disabled_adapter_reference": "reference",
    "auxiliary_loss": "routing",
    "balance_loss": "routing",
    "routing_stats": "routing",
}
__all__ = [
    "METHODS",
    "AdapterIntegrityError",
    "GoatConfig",
    "GoatModel",
    "add_aux_loss",
    "attach_uninitialised_adapters",
    "auxiliary_loss",
    "balance_loss",
    "disabled_adapter_reference",
    "find_target_layers",
    "get_goat_model",
    "load_goat_model",
    "quantization",
    "read_adapter",
    "routing_stats",
]
__version__ = "0.1.0"

# bitsandbytes (which peft loads) warns at import that the optional "kernels" package, a faster 4-bit CPU
# kernel fetched from the Hub, is absent, and then uses its own kernel: noise on every command here.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

if TYPE_CHECKING:  # for type checkers and IDEs only: the names below load lazily at run time
    from goat.adapters import quantization
    from goat.adapters.aux_loss import add_aux_loss
    from goat.adapters.config import METHODS, GoatConfig
    from goat.adapters.injection import find_target_layers
    from goat.adapters.io import AdapterIntegrityError, read_adapter
    from goat.adapters.model import GoatModel, attach_uninitialised_adapters, get_goat_model, load_goat_model
    from goat.adapters.reference import disabled_adapter_reference
    from goat.adapters.routing import auxiliary_loss, balance_loss, routing_stats


def __getattr__(name: str) -> Any:
    if name == "quantization":
        return importlib.import_module("goat.adapters.quantization")
    if name not in _PUBLIC:
        raise AttributeError(f"module 'goat' has no attribute {name!r}")
    return getattr(importlib.import_module(f"goat.adapters.{_PUBLIC[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
