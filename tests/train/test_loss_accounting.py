"""The balance loss enters every optimiser step with exactly aux_loss_coef, whatever the gradient accumulation.

Eight copies of one example, as one micro-batch of 8 (GA = 1) or four of 2 (GA = 4): every micro-batch
routes the same tokens, so L_b is the same in each, and the step's gradient from the auxiliary term
must be the same. Trainer does not divide a causal LM's loss by GA (it is normalised by the step's
token count); before the fix, the causal LM's auxiliary gradient came out GA times too large.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback, TrainingArguments

import goat
from goat.train.trainer import GoatTrainer
from tests.train.loss_models import goat_tiny_classifier, goat_tiny_llama

COPIES = 8


class RouterGradients(TrainerCallback):
    """Router weight gradients just before the (single) optimiser step."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if n.endswith("router.weight")}


def _causal_lm() -> tuple[goat.GoatModel, Dataset]:
    model = goat_tiny_llama()
    ids = torch.randint(3, 64, (12,)).tolist()
    labels = [-100] * 4 + ids[4:]  # the loss on the "response" tokens only, as the causal families train
    return model, Dataset.from_dict({"input_ids": [ids] * COPIES, "labels": [labels] * COPIES})


def _classifier() -> tuple[goat.GoatModel, Dataset]:
    model = goat_tiny_classifier()
    ids = torch.randint(3, 100, (10,)).tolist()
    return model, Dataset.from_dict({"input_ids": [ids] * COPIES, "labels": [1] * COPIES})


def _one_step(
    build, tmp_path, per_device: int, coef: float, bf16: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Router gradients before the one optimiser step, and its logged losses; ``bf16``: mixed precision, where
    accelerate wraps the model's forward and returns a copy of its output."""
    model, data = build()
    args = TrainingArguments(
        output_dir=str(tmp_path / f"{per_device}-{coef}-{bf16}"),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=COPIES // per_device,
        max_steps=1,
        learning_rate=1e-6,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=bf16,
        disable_tqdm=True,
        seed=0,
    )
    recorder = RouterGradients()
    trainer = GoatTrainer(model=model, args=args, train_dataset=data, aux_loss_coef=coef, callbacks=[recorder])
    trainer.train()
    logged = next(h for h in trainer.state.log_history if "loss" in h)
    return recorder.grads, logged


@pytest.mark.parametrize("build", [_causal_lm, _classifier], ids=["causal-lm", "classifier"])
def test_aux_gradient_and_logged_losses_do_not_depend_on_gradient_accumulation(build, tmp_path):
    coef = 1.0  # large, so the auxiliary gradient is far above float noise
    results = {}
    for per_device in (COPIES, 2):  # GA = 1 x 8 and GA = 4 x 2
        with_aux, logged = _one_step(build, tmp_path, per_device, coef)
        without_aux, _ = _one_step(build, tmp_path, per_device, 0.0)
        results[per_device] = ({n: with_aux[n] - without_aux[n] for n in with_aux}, logged)
    (aux_1, logged_1), (aux_4, logged_4) = results[COPIES], results[2]
    assert aux_1.keys() == aux_4.keys() and aux_1
    for name in aux_1:
        assert aux_1[name].norm() > 1e-4  # the auxiliary term does reach the routers
        torch.testing.assert_close(aux_4[name], aux_1[name], rtol=1e-5, atol=1e-5 * aux_1[name].abs().max().item())
    for key in ("loss", "task_loss", "aux_loss"):
        assert logged_4[key] == pytest.approx(logged_1[key], rel=1e-5), key
    assert logged_1["loss"] == pytest.approx(logged_1["task_loss"] + logged_1["aux_loss"], rel=1e-4)


@pytest.mark.parametrize("build", [_causal_lm, _classifier], ids=["causal-lm", "classifier"])
def test_logged_losses_are_the_true_means(build, tmp_path):
    """task_loss = the model's loss on the whole batch; aux_loss = coef x L_b of that batch (App. B)."""
    coef = 0.5
    _, logged = _one_step(build, tmp_path, 2, coef)
    model, data = build()  # the same initialisation, evaluated at the starting point of that step
    model.eval()  # the task loss alone (no dropout here): the model adds the balance term in training mode only
    batch = {k: torch.tensor(data[k]) for k in data.column_names}
    with torch.no_grad():
        task_loss = model(**batch).loss
        balance = goat.balance_loss(model)
    assert logged["task_loss"] == pytest.approx(task_loss.item(), rel=1e-4)
    assert logged["aux_loss"] == pytest.approx(coef * balance.item(), rel=1e-4)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-mixed-precision"])
def test_the_balance_term_enters_the_loss_once_under_mixed_precision(bf16, tmp_path):
    """loss = task loss + aux_loss_coef * L_b, with the term once: the task loss does not move with the
    coefficient, and loss - task_loss is the logged term. Under bf16 mixed precision the term was added twice
    (by the GoatModel's hook and again by the wrapped model's, on accelerate's copy of the output): the
    step optimised 2 x coef and the logged task loss held one term."""
    _, without = _one_step(_causal_lm, tmp_path, 2, 0.0, bf16)
    _, logs = _one_step(_causal_lm, tmp_path, 2, 0.05, bf16)
    assert logs["aux_loss"] > 0.01
    assert logs["task_loss"] == pytest.approx(without["task_loss"], abs=1e-5)
    assert logs["loss"] - logs["task_loss"] == pytest.approx(logs["aux_loss"], abs=1e-4)


def test_a_forward_that_raises_does_not_silence_the_next_balance_term():
    """The hook acts at the outermost of nested forwards; a forward that raised must not leave it nested."""
    model, data = _causal_lm()
    model.train()
    batch = {"input_ids": torch.tensor([data[0]["input_ids"]]), "labels": torch.tensor([data[0]["labels"]])}
    with pytest.raises(Exception):
        model(input_ids=torch.tensor([[10_000]]), labels=torch.tensor([[1]]))  # a token outside the vocabulary
    with_term = model(**batch).loss
    model.adapter_configs[model.active_adapter] = dataclasses.replace(model.goat_config, aux_loss_coef=0.0)
    without_term = model(**batch).loss
    assert (with_term - without_term).item() > 0
