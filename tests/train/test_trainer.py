"""GoatTrainer adds exactly coef x L_b (App. B) to the task loss, with L_b recomputed here from the routers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import TrainingArguments

import goat
from goat.train.trainer import GoatTrainer, load_summary
from tests.conftest import ROBERTA_TARGETS, tiny_roberta


def _balance_from_routers(model: goat.GoatModel, hidden_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """L_b = sum over layers of sum_i f_i P_i (eq. 26-28), from each router's input, captured by hooks."""
    total = torch.zeros(())
    for layer in model.adapted_layers().values():
        x = hidden_inputs[id(layer)].reshape(-1, layer.router.weight.shape[1])
        probs = F.softmax(x @ layer.router.weight.T, dim=-1)
        top = probs.topk(layer.router.top_k, dim=-1).indices
        counts = torch.bincount(top.flatten(), minlength=probs.shape[1]).float()
        f = probs.shape[1] / (layer.router.top_k * x.shape[0]) * counts
        total = total + (f * probs.mean(0)).sum()
    return total


@pytest.mark.parametrize("coef", [0.0, 1e-3, 0.5])
def test_trainer_adds_coef_times_balance_loss(tmp_path, coef):
    model = goat.get_goat_model(
        tiny_roberta(),
        goat.GoatConfig(
            r=8,
            num_experts=4,
            top_k=2,
            lora_dropout=0.0,
            target_modules=ROBERTA_TARGETS,
            modules_to_save=["classifier"],
        ),
    )
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    trainer = GoatTrainer(model=model, args=args, aux_loss_coef=coef)
    inputs = {"input_ids": torch.randint(3, 100, (4, 10)), "labels": torch.tensor([0, 1, 2, 1])}

    captured: dict[int, torch.Tensor] = {}
    hooks = [
        layer.register_forward_pre_hook(lambda mod, args: captured.__setitem__(id(mod), args[0].detach()))
        for layer in model.adapted_layers().values()
    ]
    model.train()
    torch.manual_seed(0)
    loss = trainer.compute_loss(model, dict(inputs))
    for hook in hooks:
        hook.remove()
    torch.manual_seed(0)  # same dropout masks as inside compute_loss
    task_loss = F.cross_entropy(model(input_ids=inputs["input_ids"]).logits, inputs["labels"])
    expected = task_loss + coef * _balance_from_routers(model, captured)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-7)
    if coef:
        assert (loss - task_loss).item() > 0  # L_b >= 1 per layer (App. B: minimum 1 at uniform load)


def test_trainer_reads_label_names_through_the_wrapper(tmp_path):
    model = goat.get_goat_model(tiny_roberta(), goat.GoatConfig(method="lora", r=4, target_modules=["query"]))
    trainer = GoatTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True))
    assert trainer.label_names == ["labels"]
    assert trainer.model_accepts_loss_kwargs is False  # a classifier does not normalise by global token count


def test_load_summary_uniform_and_skewed():
    assert load_summary({"a": [0.25, 0.25, 0.25, 0.25]}) == {"expert_load_max": 0.25, "expert_load_cv": 0.0}
    skewed = load_summary({"a": [1.0, 0.0, 0.0, 0.0]})
    assert skewed["expert_load_max"] == 1.0 and skewed["expert_load_cv"] == pytest.approx(2.0)
    assert load_summary({}) == {}


def test_logged_loads_reach_the_reporters_as_one_histogram_not_a_key_per_layer(tmp_path):
    from transformers.integrations import WandbCallback

    model = goat.get_goat_model(tiny_roberta(), goat.GoatConfig(r=4, num_experts=4, top_k=2, target_modules=["query"]))
    trainer = GoatTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True))
    logged = []

    class FakeWandb:  # what WandbCallback holds once initialised: the wandb module
        Histogram = staticmethod(lambda values: ("histogram", sorted(values)))

        @staticmethod
        def log(data):
            logged.append(data)

    wandb = WandbCallback.__new__(WandbCallback)
    wandb._initialized, wandb._wandb = True, FakeWandb
    trainer.callback_handler.callbacks.append(wandb)
    model.train()
    trainer.compute_loss(model, {"input_ids": torch.randint(3, 100, (2, 6)), "labels": torch.tensor([0, 1])})
    trainer.log({"loss": 1.0})
    history = trainer.state.log_history[-1]
    assert {"task_loss", "aux_loss", "expert_load_max", "expert_load_cv"} <= set(history)
    assert not [k for k in history if k.startswith("expert_load/")]  # no key per layer (console, W&B scalars)
    (entry,) = [data for data in logged if "train/expert_load_per_layer" in data]  # the other: transformers' scalars
    assert not [k for data in logged for k in data if "expert_load/" in k]
    kind, shares = entry["train/expert_load_per_layer"]
    assert kind == "histogram" and len(shares) == 2 and all(0.25 <= s <= 1.0 for s in shares)


def test_the_training_modules_import_without_deepspeed():
    """DeepSpeed is optional (accelerate.utils exports its scheduler wrapper only when it is installed): a machine
    without it must still train. The first GPU machine had no deepspeed, and the trainer did not import there."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['deepspeed'] = None\n"  # find_spec now reports deepspeed as absent
        "import accelerate.utils, goat.train.trainer, goat.train.runner, goat.train.glue, goat.train.causal\n"
        "assert not accelerate.utils.is_deepspeed_available()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
