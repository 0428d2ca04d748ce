"""The MoE losses and statistics of an adapted model: the balance loss (App. B) and per-layer expert load."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from goat.adapters.layers import MoELinear, Router
from goat.adapters.single import kasa_regularization


def _routers(model: nn.Module) -> Iterator[tuple[str, Router]]:
    """The active router of every MoE layer, by layer name (a GoatModel's: named as in the model it wraps)."""
    model = getattr(model, "get_base_model", lambda: model)()  # a GoatModel: the model it wraps
    for name, module in model.named_modules():
        if isinstance(module, MoELinear) and module.active is not None:
            yield name, module.active.router


def balance_loss(model: nn.Module, *, ran_only: bool = False) -> torch.Tensor:
    """Sum over MoE layers of the last forward's L_b = sum_i f_i P_i (App. B, eq. 26-28).

    Perfectly uniform routing gives 1 per layer. (The authors' code computes k times this.)
    Returns a zero tensor for models without routers. ``ran_only``: leave out routers that have never
    run (a targeted layer the forward does not use) instead of raising.
    """
    losses = [router.last_balance_loss for _, router in _routers(model)]
    if ran_only:
        losses = [loss for loss in losses if loss is not None]
    if any(loss is None for loss in losses):
        raise RuntimeError("balance_loss(model) needs a forward pass first.")
    if not losses:
        return torch.zeros(())
    return torch.stack([loss.float() for loss in losses]).sum()


def auxiliary_loss(model: nn.Module, aux_loss_coef: float, *, ran_only: bool = False) -> torch.Tensor:
    """What a method adds to the task loss: ``aux_loss_coef * L_b`` (+ KaSA's own regularisers)."""
    loss = aux_loss_coef * balance_loss(model, ran_only=ran_only)
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
