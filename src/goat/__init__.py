"""GOAT: LoRA Mixture-of-Experts with SVD-segment priors and aligned scaling (ICML 2025).

Public API::

    config = goat.GoatConfig(method="goat", r=32, num_experts=8, top_k=2, target_modules=[...])
    model = goat.get_goat_model(model, config)   # adapters + routers trainable, W0 - W_res frozen
    loss = task_loss + 1e-3 * goat.balance_loss(model)
    model.save_pretrained("adapter/"); goat.load_goat_model(fresh_base, "adapter/")
"""

from goat.config import METHODS, GoatConfig
from goat.model import (
    GoatModel,
    auxiliary_loss,
    balance_loss,
    find_target_layers,
    get_goat_model,
    load_goat_model,
    routing_stats,
)

__all__ = [
    "METHODS",
    "GoatConfig",
    "GoatModel",
    "auxiliary_loss",
    "balance_loss",
    "find_target_layers",
    "get_goat_model",
    "load_goat_model",
    "routing_stats",
]
__version__ = "0.1.0"
