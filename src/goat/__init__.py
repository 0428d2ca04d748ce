"""GOAT: LoRA Mixture-of-Experts with SVD-segment priors and aligned scaling (ICML 2025).

Public API::

    config = goat.GoatConfig(method="goat", r=32, num_experts=8, top_k=2, target_modules=[...])
    model = goat.get_goat_model(model, config)   # adapters + routers trainable, W0 frozen (W_res a frozen path)
    model(**batch, labels=labels).loss   # training mode: task loss + config.aux_loss_coef * L_b (goat.aux_loss)
    loss = goat.add_aux_loss(loss_from_logits, model)   # trainers that compute their own loss (DPO, KTO)
    model.save_pretrained("adapter/"); goat.load_goat_model(fresh_base, "adapter/")
    model.add_adapter("b", other_config); model.set_adapter("b"); model.disable_adapter(); model.unload()
    base = AutoModelForCausalLM.from_pretrained(name, quantization_config=goat.quantization.quantization_config("4bit"))
"""

from goat import quantization
from goat.adapter_io import AdapterIntegrityError, read_adapter
from goat.aux_loss import add_aux_loss
from goat.config import METHODS, GoatConfig
from goat.model import GoatModel, attach_uninitialised_adapters, find_target_layers, get_goat_model, load_goat_model
from goat.reference import disabled_adapter_reference
from goat.routing import auxiliary_loss, balance_loss, routing_stats

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
