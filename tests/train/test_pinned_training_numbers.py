"""Pinned numbers of two seeded tiny GoatTrainer runs: moving the balance loss must not change a training number.

Three optimiser steps with gradient accumulation 2, on a causal LM (a step's token count is passed to
the loss as ``num_items_in_batch``) and on a classifier (Trainer divides the loss by GA). The logged
losses and the router gradients before every step were recorded from the trainer as it stood before
the balance loss moved into the model (issue 19); a refactor that changes any of them fails here.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback, TrainingArguments

import goat
from goat.train.trainer import GoatTrainer
from tests.train.loss_models import goat_tiny_classifier, goat_tiny_llama


class RouterGradients(TrainerCallback):
    """Per optimiser step: the norm of all router weight gradients together, and their dot product with a
    fixed random vector (a sign-sensitive second number: a router gradient sums to zero over the experts)."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, float]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        grads = torch.cat([p.grad.flatten() for n, p in model.named_parameters() if n.endswith("router.weight")])
        probe = torch.randn(grads.numel(), generator=torch.Generator().manual_seed(0))
        self.steps.append((grads.norm().item(), (grads * probe).sum().item()))


def _causal_lm() -> tuple[goat.GoatModel, Dataset]:
    model = goat_tiny_llama()
    rows = [torch.randint(3, 64, (12,)).tolist() for _ in range(12)]
    labels = [[-100] * (3 + i % 4) + ids[3 + i % 4 :] for i, ids in enumerate(rows)]  # uneven token counts
    return model, Dataset.from_dict({"input_ids": rows, "labels": labels})


def _classifier() -> tuple[goat.GoatModel, Dataset]:
    model = goat_tiny_classifier()
    rows = [torch.randint(3, 100, (10,)).tolist() for _ in range(12)]
    return model, Dataset.from_dict({"input_ids": rows, "labels": [i % 3 for i in range(12)]})


def run(build, output_dir) -> tuple[list[tuple[float, float, float]], list[tuple[float, float]]]:
    """(loss, task_loss, aux_loss) logged at each of 3 steps, and the router gradients before each step."""
    model, data = build()
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=3,
        learning_rate=5e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    recorder = RouterGradients()
    trainer = GoatTrainer(model=model, args=args, train_dataset=data, aux_loss_coef=0.1, callbacks=[recorder])
    trainer.train()
    logged = [(h["loss"], h["task_loss"], h["aux_loss"]) for h in trainer.state.log_history if "task_loss" in h]
    return logged, recorder.steps


# Recorded before the balance loss moved into the model (torch 2.14.1, transformers 5.23.0, CPU, float32).
PINNED = {
    "_causal_lm": (
        [
            (4.788995742797852, 4.169097, 0.6198988),
            (4.780139923095703, 4.137376, 0.64276433),
            (4.815943717956543, 4.191344, 0.62460005),
        ],
        [
            (0.03630133345723152, 0.016325052827596664),
            (0.09053212404251099, -0.11435167491436005),
            (0.07836536318063736, 0.10514803975820541),
        ],
    ),
    "_classifier": (
        [
            (1.5174494981765747, 1.090418, 0.42703196),
            (2.4043211936950684, 1.878205, 0.52611637),
            (1.625398874282837, 1.088583, 0.53681624),
        ],
        [
            (0.10754226893186569, -0.2911706268787384),
            (0.04664895310997963, 0.10013286769390106),
            (0.15072579681873322, 0.22834530472755432),
        ],
    ),
}


@pytest.mark.parametrize("build", [_causal_lm, _classifier], ids=["causal-lm", "classifier"])
def test_training_numbers_are_pinned(build, tmp_path):
    logged, grads = run(build, tmp_path)
    expected_logged, expected_grads = PINNED[build.__name__]
    assert len(logged) == len(expected_logged) == 3 and len(grads) == 3
    for got, want in zip(logged, expected_logged):
        assert got == pytest.approx(want, rel=2e-5, abs=1e-8)
    for got, want in zip(grads, expected_grads):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-7)
