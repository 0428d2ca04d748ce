"""Per-step records of a training run: loss and the equivalent-gradient norm of Lemma 2.2.

For ``W̃ = W + s B A`` (Definition 2.1) a plain gradient step on A and B moves W̃ along

    g̃ = s² (B Bᵀ g + g Aᵀ A)                                             (Lemma 2.2, eq. 6)

with ``g = ∂L/∂W`` the full fine-tuning gradient. Since ``G_A = s Bᵀ g`` and ``G_B = s g Aᵀ``
this is ``g̃ = s (B G_A + G_B A)``: it is computed from the adapter's own gradients, before the
Trainer clips them, and its Frobenius norm is evaluated through 2r x 2r Gram matrices, never
forming an m x n matrix. For MoE layers each expert j contributes its own
``g̃_j = s_j (B_j G_Aj + G_Bj A_j)`` (Theorems 3.2, 3.5 align every expert separately).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback

from goat.adapters.config import ADAPTER
from goat.adapters.layers import LoraMoELinear
from goat.adapters.peft_layers import SingleLoraLinear


@dataclass
class ExpertFactors:
    """Where one expert's A [d, n] and B [m, d] live: a parameter, an expert index, a layout."""

    A: nn.Parameter
    B: nn.Parameter
    index: int | None  # expert index into stacked MoE parameters; None for a single LoRA
    scaling: float

    def values(self, grads: dict[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) or, with ``grads`` (keyed by id(parameter)), their gradients (G_A, G_B)."""
        A = self.A.detach() if grads is None else grads[id(self.A)]
        B = self.B.detach() if grads is None else grads[id(self.B)]
        if self.index is None:
            return A, B  # peft: lora_A.weight [r, n], lora_B.weight [m, r]
        return A[self.index], B[self.index].T  # ours: lora_A [E, d, n], lora_B [E, d, m]


def expert_factors(model: nn.Module) -> list[ExpertFactors]:
    """Every LoRA expert of ``model`` (single-LoRA layers and MoE layers with one A per expert)."""
    experts = []
    for module in model.modules():
        if isinstance(module, SingleLoraLinear):
            experts.append(
                ExpertFactors(
                    module.lora_A[ADAPTER].weight, module.lora_B[ADAPTER].weight, None, module.expert_scaling()[0]
                )
            )
        elif isinstance(module, LoraMoELinear):
            if module.lora_A.shape[0] != module.num_experts:
                raise ValueError("the equivalent gradient needs one A per expert; hydralora shares a single A.")
            experts += [
                ExpertFactors(module.lora_A, module.lora_B, j, s) for j, s in enumerate(module.expert_scaling())
            ]
    if not experts:
        raise ValueError(
            "the model has no LoRA experts; the equivalent gradient (Lemma 2.2) is defined for LoRA methods."
        )
    return experts


def low_rank_product_norm_sq(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``||X Y||_F²`` for X [m, k], Y [k, n] as ``Σ (XᵀX) ⊙ (Y Yᵀ)`` (k x k Gram matrices)."""
    X, Y = X.double(), Y.double()
    return ((X.T @ X) * (Y @ Y.T)).sum()


def equivalent_gradient_norm(experts: list[ExpertFactors], grads: dict[int, torch.Tensor]) -> float:
    """``sqrt(Σ_experts ||s (B G_A + G_B A)||_F²)`` (Lemma 2.2) from the adapter gradients ``grads``."""
    total = 0.0
    for expert in experts:
        A, B = expert.values()
        G_A, G_B = expert.values(grads)
        # B G_A + G_B A = [B, G_B] @ [G_A; A]
        norm_sq = low_rank_product_norm_sq(torch.cat([B, G_B.to(B.dtype)], 1), torch.cat([G_A.to(A.dtype), A], 0))
        total += expert.scaling**2 * float(norm_sq)
    return math.sqrt(total)


class StepRecorder(TrainerCallback):
    """Records, per optimiser step, the logged loss, task loss (without the balance loss) and,
    with ``equivalent_gradient=True``, the Lemma 2.2 norm from the unclipped gradients.

    Needs ``logging_steps=1`` (one log per step) in the run's arguments.
    """

    def __init__(self, *, equivalent_gradient: bool = False):
        self.equivalent_gradient = equivalent_gradient
        self.records: list[dict[str, Any]] = []
        self._experts: list[ExpertFactors] = []
        self._grads: dict[int, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._pending: float | None = None

    def _keep(self, param: torch.Tensor) -> None:
        # After every backward (micro-batches accumulate): the accumulated, not yet clipped gradient.
        self._grads[id(param)] = param.grad.detach().clone()

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001 (transformers signature)
        if args.logging_steps != 1:
            raise ValueError(f"StepRecorder needs logging_steps=1, got {args.logging_steps}.")
        if self.equivalent_gradient:
            self._experts = expert_factors(model)
            params = {id(p): p for e in self._experts for p in (e.A, e.B)}.values()
            self._handles = [p.register_post_accumulate_grad_hook(self._keep) for p in params]

    def on_pre_optimizer_step(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.equivalent_gradient:
            self._pending = equivalent_gradient_norm(self._experts, self._grads)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if logs and "loss" in logs and "train_runtime" not in logs:
            record = {
                "step": state.global_step,
                "loss": float(logs["loss"]),
                "task_loss": float(logs.get("task_loss", logs["loss"])),
            }
            if self.equivalent_gradient:
                record["equivalent_grad_norm"] = self._pending
            self.records.append(record)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        for handle in self._handles:
            handle.remove()
        self._handles, self._grads = [], {}
