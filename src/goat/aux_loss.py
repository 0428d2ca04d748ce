"""The balance loss as part of the model's own loss, so that every trainer applies it (App. B, eq. 26-28).

GOAT trains with ``loss = task_loss + aux_loss_coef * L_b`` (App. B; coefficient 1e-3 per the authors'
rebuttal). As Mixtral's ``router_aux_loss_coef`` in transformers, the term is added by the model: a
forward hook on the adapted model adds it to ``outputs.loss`` whenever the model computes its own
loss (labels given) in training mode. Evaluation losses stay the task loss.

Gradient accumulation: a micro-batch's term is weighted by its share of the optimiser step.

* Without ``num_items_in_batch`` the task loss is a per-micro-batch mean, which transformers' Trainer
  divides by the accumulation steps GA; the term is added unscaled and is divided with it.
* With ``num_items_in_batch`` (a causal LM normalising by the step's token count; Trainer then does
  not divide by GA) the term is multiplied by this micro-batch's share of the step: ``1 / GA`` when the
  trainer states GA (:func:`accumulation_steps`; ``GoatTrainer`` does, as TRL divides its MoE
  ``aux_loss`` by GA), else the micro-batch's share of the step's label tokens.

Either way the step's gradient holds ``aux_loss_coef x`` (a weighted mean of) ``L_b`` — never ``GA x``.

Trainers that compute their own loss from the logits (DPO, KTO, a custom loop) call
:func:`add_aux_loss`: it adds the term of the last forward that ran in training mode *with* gradients,
so a second forward under ``no_grad`` (a reference model, a metric) cannot clobber it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from goat.routing import auxiliary_loss

_STEPS: ContextVar[int | None] = ContextVar("goat_accumulation_steps", default=None)


@contextmanager
def accumulation_steps(steps: int) -> Iterator[None]:
    """Inside the block, a micro-batch's term under ``num_items_in_batch`` is weighted ``1 / steps``."""
    token = _STEPS.set(int(steps))
    try:
        yield
    finally:
        _STEPS.reset(token)


def _label_count(module: nn.Module, kwargs: dict[str, Any]) -> torch.Tensor | None:
    """Label tokens (not -100) of this micro-batch, counted as transformers' Trainer counts ``num_items_in_batch``."""
    labels = kwargs.get("shift_labels")
    if labels is None:
        labels = kwargs.get("labels")
        if labels is None:
            return None
        if type(module).__name__.endswith("ForCausalLM"):  # the loss shifts the labels by one
            labels = labels[..., 1:]
    return labels.ne(-100).sum()


def weighted_for_step(term: torch.Tensor, module: nn.Module, kwargs: dict[str, Any]) -> torch.Tensor:
    """This forward's term times its share of the optimiser step (module docstring): unscaled, ``/ GA``,
    or times the micro-batch's share of the step's label tokens."""
    num_items = kwargs.get("num_items_in_batch")
    if num_items is None:
        return term
    steps = _STEPS.get()
    if steps is not None:
        return term / steps
    count = _label_count(module, kwargs)
    if count is None:
        return term
    return term * (count.to(term.device, torch.float32) / torch.as_tensor(num_items, dtype=torch.float32, device=term.device))


class BalanceLossHook:
    """Forward hook (``with_kwargs``) of an adapted model: adds ``aux_loss_coef * L_b`` to ``outputs.loss``.

    ``coef`` returns the active adapter's ``aux_loss_coef`` at each forward. ``latest`` holds
    ``(term, added)`` of the last training forward: ``term = aux_loss_coef * L_b`` (plus KaSA's
    regularisers) and ``added``, what went into ``outputs.loss`` (None when the model computed no loss);
    ``last`` the same for the last training forward with gradients (:func:`add_aux_loss` reads it).
    """

    def __init__(self, coef: Callable[[], float]):
        self.coef = coef
        self.latest: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.last: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
        if not module.training:
            return None
        loss = getattr(output, "loss", None) if not isinstance(output, torch.Tensor) else None
        term = auxiliary_loss(module, self.coef(), ran_only=True)
        added = None
        if loss is not None:
            term = term.to(loss.device)
            added = weighted_for_step(term, module, kwargs)
            output.loss = loss + added
        self.latest = (term, added)
        if torch.is_grad_enabled():
            self.last = self.latest
        return output if loss is not None else None


def attach(model: nn.Module, owner: Any) -> torch.utils.hooks.RemovableHandle:
    """Register the hook on ``model``; the coefficient is read from ``owner.goat_config`` (held weakly)."""
    ref = weakref.ref(owner)
    hook = BalanceLossHook(lambda: ref().goat_config.aux_loss_coef)
    handle = model.register_forward_hook(hook, with_kwargs=True)
    handle.hook = hook  # type: ignore[attr-defined]
    return handle


def find_hook(model: nn.Module) -> BalanceLossHook | None:
    """The :class:`BalanceLossHook` on ``model`` (a GoatModel or the model it adapted), or None."""
    for module in (getattr(model, "get_base_model", lambda: model)(), model):
        for hook in module._forward_hooks.values():
            if isinstance(hook, BalanceLossHook):
                return hook
    return None


def add_aux_loss(loss: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``loss + aux_loss_coef * L_b`` of the last training forward with gradients, for a loss computed
    from the logits (DPO, KTO, custom loops). Call it once per such forward; it consumes the term.

    Add it to a per-micro-batch loss (Trainer divides by GA). Raises if no such forward ran since the last call.
    """
    hook = find_hook(model)
    if hook is None:
        raise ValueError("add_aux_loss: this model carries no GOAT adapter (no balance-loss hook); adapt it with goat.get_goat_model.")
    if hook.last is None:
        raise RuntimeError("add_aux_loss: no training-mode forward with gradients ran since the last call; call it after the forward.")
    term, _ = hook.last
    hook.last = None
    return loss + term.to(loss.device)
