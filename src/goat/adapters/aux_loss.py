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

TRL's trainers (SFT, DPO, KTO, ...) weight an MoE model's ``outputs.aux_loss`` themselves, by the
config's ``router_aux_loss_coef`` (divided by GA under ``num_items_in_batch``, as ``GoatTrainer``
does): :func:`mirror_into_model_config` states GOAT's routers in the model config under
transformers' MoE names, and a forward asked for ``output_router_logits`` returns ``aux_loss = L_b``
of that very forward. TRL's fused LM head computes its loss from log-probabilities, not
``outputs.loss``, so this is the path by which its trainers apply the term.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from goat.adapters.routing import auxiliary_loss, balance_loss

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
        model = getattr(module, "get_base_model", lambda: module)()  # a GoatModel: the model it wraps
        if type(model).__name__.endswith("ForCausalLM"):  # the loss shifts the labels by one
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
    return term * (
        count.to(term.device, torch.float32) / torch.as_tensor(num_items, dtype=torch.float32, device=term.device)
    )


class BalanceLossHook:
    """Forward hook (``with_kwargs``) of an adapted model: adds ``aux_loss_coef * L_b`` to ``outputs.loss``.

    ``coef`` returns the active adapter's ``aux_loss_coef`` at each forward. ``latest`` holds
    ``(term, added)`` of the last training forward: ``term = aux_loss_coef * L_b`` (plus KaSA's
    regularisers) and ``added``, what went into ``outputs.loss`` (None when the model computed no loss);
    ``last`` the same for the last training forward with gradients (:func:`add_aux_loss` reads it).

    A GoatModel and the model it wraps both carry the hook (:func:`attach`), and the GoatModel's forward
    calls the wrapped model's: only the outermost of the nested forwards acts, on the output its caller
    gets. (Marking the output instead fails under mixed precision: accelerate returns a copy of the
    wrapped model's output, unmarked, and the term was added twice.)
    """

    def __init__(self, coef: Callable[[], float]):
        self.coef = coef
        self.latest: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.last: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.depth = 0  # forwards of the hooked modules running now, one inside the other

    def enter(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        """Forward pre-hook: one more hooked forward is running."""
        self.depth += 1

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
        self.depth -= 1  # registered with always_call: a forward that raised is counted out too
        if self.depth > 0 or output is None or not module.training or isinstance(output, (torch.Tensor, tuple)):
            return None
        if kwargs.get("output_router_logits"):  # TRL's MoE convention: it weights aux_loss by router_aux_loss_coef
            output.aux_loss = balance_loss(module, ran_only=True)
        # TRL's fused LM head returns log-probabilities and a loss its trainers do not use: that is not the model's loss
        fused = getattr(output, "log_probs", None) is not None
        loss = None if fused else getattr(output, "loss", None)
        term = auxiliary_loss(module, self.coef(), ran_only=True)
        added = None
        if loss is not None:
            term = term.to(loss.device)
            added = weighted_for_step(term, module, kwargs)
            output.loss = loss + added
        self.latest = (term, added)
        if torch.is_grad_enabled():
            self.last = self.latest
        return output


MOE_CONFIG_NAMES = ("output_router_logits", "router_aux_loss_coef", "num_experts", "num_experts_per_tok")


def _no_router_logits(module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
    """A backbone asked for ``output_router_logits`` has none to give (GOAT's routers are in its linear layers)."""
    if (
        kwargs.get("output_router_logits")
        and not isinstance(output, tuple)
        and getattr(output, "router_logits", None) is None
    ):
        output.router_logits = None


def attach(model: nn.Module, owner: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Register the hook on ``model`` and on ``owner`` (the GoatModel wrapping it: TRL may replace the wrapper's
    forward), and the router-logits stand-in on the backbone; the coefficient is read from ``owner.goat_config``."""
    ref = weakref.ref(owner)
    hook = BalanceLossHook(lambda: ref().goat_config.aux_loss_coef)
    handles = [module.register_forward_pre_hook(hook.enter, with_kwargs=True) for module in (model, owner)]
    handles += [module.register_forward_hook(hook, with_kwargs=True, always_call=True) for module in (model, owner)]
    backbone = getattr(model, "base_model", model)
    if isinstance(backbone, nn.Module) and backbone is not model:
        handles.append(backbone.register_forward_hook(_no_router_logits, with_kwargs=True))
    return handles


def mirror_into_model_config(model: nn.Module, config: Any) -> list[str]:
    """State the active adapter's routers in ``model.config`` under transformers' MoE names, as TRL reads them:
    ``router_aux_loss_coef = aux_loss_coef``, ``num_experts``, ``num_experts_per_tok`` and ``output_router_logits``.

    Leaves a config alone that declares an MoE of its own (a Mixtral base); returns the names it set.
    """
    model_config = getattr(model, "config", None)
    if model_config is None or not hasattr(model_config, "get_text_config") or not config.is_moe:
        return []
    text_config = model_config.get_text_config()
    owned = getattr(text_config, "_goat_moe_names", None)
    if owned is None and any(hasattr(text_config, name) for name in MOE_CONFIG_NAMES):
        return []
    values = {
        "router_aux_loss_coef": float(config.aux_loss_coef),
        "num_experts": config.num_experts,
        "num_experts_per_tok": config.top_k,
    }
    for name, value in values.items():
        setattr(text_config, name, value)
    if not hasattr(text_config, "output_router_logits"):
        text_config.output_router_logits = False  # TRL turns it on when router_aux_loss_coef is not 0
    text_config._goat_moe_names = list(MOE_CONFIG_NAMES)
    return list(MOE_CONFIG_NAMES)


def remove_from_model_config(model: nn.Module) -> None:
    """Undo :func:`mirror_into_model_config`."""
    model_config = getattr(model, "config", None)
    if model_config is None or not hasattr(model_config, "get_text_config"):
        return
    text_config = model_config.get_text_config()
    for name in getattr(text_config, "_goat_moe_names", None) or []:
        if hasattr(text_config, name):
            delattr(text_config, name)
    if hasattr(text_config, "_goat_moe_names"):
        delattr(text_config, "_goat_moe_names")


def find_hook(model: nn.Module) -> BalanceLossHook | None:
    """The :class:`BalanceLossHook` on ``model`` (a GoatModel or the model it adapted), or None."""
    for module in (model, getattr(model, "get_base_model", lambda: model)()):
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
        raise ValueError(
            "add_aux_loss: this model carries no GOAT adapter (no balance-loss hook); adapt it with goat.get_goat_model."
        )
    if hook.last is None:
        raise RuntimeError(
            "add_aux_loss: no training-mode forward with gradients ran since the last call; call it after the forward."
        )
    term, _ = hook.last
    hook.last = None
    return loss + term.to(loss.device)
