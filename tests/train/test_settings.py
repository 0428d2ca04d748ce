"""Run settings: one name from YAML key to flag to dataclass field, layers that compose, errors that name the key.

Precedence: dataclass default < configs/<family>.yaml defaults < its task block < --config files < command line.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys

import pytest
import yaml
from transformers import TrainingArguments

from goat import GoatConfig
from goat.train import settings
from goat.train.__main__ import main
from goat.train.arguments import GlueArguments, GoatTrainingArguments
from goat.train.settings import _apply_global_batch, family_yaml, print_config, resolve


def _write(tmp_path, name: str, data: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_each_layer_overrides_only_what_it_names(tmp_path):
    # dataclass default: GoatConfig.rho is 10 and no YAML names it
    base = resolve("glue", ["--task", "rte"])
    assert base.adapter.rho == GoatConfig().rho and base.training.max_grad_norm == TrainingArguments("x").max_grad_norm
    # family defaults (Table 11) and the task block (RTE: 50 epochs)
    assert (base.adapter.r, base.adapter.lora_alpha, base.training.learning_rate, base.data.max_seq_length) == (
        8,
        16,
        1e-4,
        128,
    )
    assert base.training.num_train_epochs == 50 and resolve("glue", ["--task", "cola"]).training.num_train_epochs == 10
    # a --config file over the family's; a later file over an earlier one; each only on the keys it names
    first = _write(tmp_path, "a.yaml", {"r": 16, "learning_rate": 3e-4})
    second = _write(tmp_path, "b.yaml", {"learning_rate": 5e-4})
    layered = resolve("glue", ["--task", "rte"], config_files=[first, second])
    assert (layered.adapter.r, layered.training.learning_rate) == (16, 5e-4)
    assert layered.training.num_train_epochs == 50 and layered.training.global_batch_size == 256  # untouched keys
    # the command line over everything
    cli = resolve("glue", ["--task", "rte", "--r", "32", "--num_train_epochs", "3"], config_files=[first])
    assert (cli.adapter.r, cli.training.num_train_epochs, cli.training.learning_rate) == (32, 3, 3e-4)


def test_a_user_file_may_be_nested_with_its_own_task_blocks(tmp_path):
    nested = _write(
        tmp_path, "n.yaml", {"defaults": {"num_experts": 4, "task": "mrpc"}, "tasks": {"rte": {"num_train_epochs": 7}}}
    )
    config = resolve("glue", [], config_files=[nested])
    assert config.data.task == "mrpc" and config.adapter.num_experts == 4 and config.training.num_train_epochs == 10
    assert resolve("glue", ["--task", "rte"], config_files=[nested]).training.num_train_epochs == 7


def test_unknown_keys_and_flags_name_the_nearest_setting(tmp_path):
    with pytest.raises(
        ValueError, match=r"'learnig_rate' is not a setting of this family; did you mean 'learning_rate'\?"
    ):
        resolve("glue", ["--task", "rte"], config_files=[_write(tmp_path, "u.yaml", {"learnig_rate": 1e-4})])
    with pytest.raises(ValueError, match=r"'rank' is not a setting of this family; it is now called 'r'"):
        resolve("glue", ["--task", "rte"], config_files=[_write(tmp_path, "old.yaml", {"rank": 8})])
    with pytest.raises(ValueError, match=r"unknown flag --num_expert; did you mean 'num_experts'\?"):
        resolve("glue", ["--task", "rte", "--num_expert", "4"])
    with pytest.raises(ValueError, match="'backbone' is not a setting"):  # a vision setting is not a GLUE one
        resolve("glue", ["--task", "rte"], config_files=[_write(tmp_path, "v.yaml", {"backbone": "hf"})])
    with pytest.raises(ValueError, match="'rtee' is not in glue.yaml"):
        resolve("glue", ["--task", "rtee"])


def test_standard_trainer_flags_work_as_in_the_transformers_examples():
    config = resolve(
        "glue",
        [
            "--task",
            "rte",
            "--learning_rate",
            "2e-5",
            "--num_train_epochs",
            "4",
            "--per_device_train_batch_size",
            "8",
            "--gradient_accumulation_steps",
            "4",
            "--global_batch_size",
            "32",
            "--save_steps",
            "50",
            "--max_grad_norm",
            "0.5",
            "--optim",
            "adamw_torch",
            "--bf16",
            "--gradient_checkpointing",
            "--max_steps",
            "100",
            "--report_to",
            "wandb",
            "tensorboard",
            "--resume_from_checkpoint",
            "/some/run/checkpoint-10",
        ],
    )
    training = config.training
    assert isinstance(training, GoatTrainingArguments) and isinstance(training, TrainingArguments)
    assert (training.learning_rate, training.num_train_epochs, training.per_device_train_batch_size) == (2e-5, 4, 8)
    assert (training.gradient_accumulation_steps, training.save_steps, training.max_grad_norm, training.max_steps) == (
        4,
        50,
        0.5,
        100,
    )
    assert training.bf16 and training.gradient_checkpointing and training.report_to == ["wandb", "tensorboard"]
    assert training.resume_from_checkpoint == "/some/run/checkpoint-10"
    assert resolve("glue", ["--task", "rte", "--resume"]).training.resume_from_checkpoint == "last"
    assert resolve("glue", ["--task", "rte", "--learning-rate", "3e-5"]).training.learning_rate == 3e-5  # dashes too


def test_global_batch_sets_gradient_accumulation_and_a_contradiction_is_an_error(monkeypatch):
    assert resolve("glue", ["--task", "rte"]).training.gradient_accumulation_steps == 256 // 32
    with pytest.raises(ValueError, match="contradicts global_batch_size 256"):
        resolve("glue", ["--task", "rte", "--gradient_accumulation_steps", "3"])
    with pytest.raises(ValueError, match="not a multiple"):
        resolve("glue", ["--task", "rte", "--per_device_train_batch_size", "48"])
    # Under torchrun the processes share the global batch (the arithmetic alone: building TrainingArguments
    # with WORLD_SIZE set would start torch.distributed).
    monkeypatch.setenv("WORLD_SIZE", "4")
    values = {"global_batch_size": 256, "per_device_train_batch_size": 32, "gradient_accumulation_steps": 1}
    _apply_global_batch(values, explicit=set())
    assert values["gradient_accumulation_steps"] == 2


def test_the_adapter_block_is_goat_config_itself():
    config = resolve(
        "glue",
        [
            "--task",
            "rte",
            "--method",
            "pissa",
            "--segment",
            "2",
            "--scaling",
            "2.5",
            "--target_modules",
            "query",
            "value",
        ],
    )
    assert isinstance(config.adapter, GoatConfig) and isinstance(config.data, GlueArguments)
    assert (config.adapter.segment, config.adapter.scaling, config.adapter.target_modules) == (
        2,
        2.5,
        ["query", "value"],
    )
    assert resolve("glue", ["--task", "rte", "--scaling", "theory"]).adapter.scaling == "theory"
    assert config.adapter.seed == config.training.seed == 0  # one seed setting, read by both
    with pytest.raises(ValueError, match="scaling='big'"):
        resolve("glue", ["--task", "rte", "--scaling", "big"])


def test_every_key_of_every_family_yaml_is_a_setting_of_that_family():
    for family in ("glue", "vision", "math", "code", "chat", "commonsense"):
        for task in family_yaml(family).get("tasks") or {}:
            resolve(family, ["--task", task])  # raises on an unknown key


def test_print_config_round_trips_as_a_flat_config(tmp_path, capsys):
    assert main(["glue", "--task", "rte", "--r", "16", "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert "r: 16" in printed and "learning_rate: 0.0001" in printed and "num_train_epochs: 50" in printed
    path = tmp_path / "printed.yaml"
    path.write_text(printed)
    again = resolve("glue", [], config_files=[str(path)])
    original = resolve("glue", ["--task", "rte", "--r", "16"])
    buffer_a, buffer_b = io.StringIO(), io.StringIO()
    print_config(again, buffer_a)
    print_config(original, buffer_b)
    assert buffer_a.getvalue() == buffer_b.getvalue()
    assert dataclasses.asdict(again.adapter) == dataclasses.asdict(original.adapter)


def test_print_config_writes_only_what_a_user_could_write(capsys):
    assert main(["glue", "--task", "rte", "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["global_batch_size"] == 256 and printed["per_device_train_batch_size"] == 32
    # derived (from global_batch_size, or on a CPU) and machine-dependent settings are not the user's
    assert not {"gradient_accumulation_steps", "use_cpu", "dataloader_pin_memory", "svd_cache_dir", "family"} & set(
        printed
    )
    assert main(["glue", "--task", "rte", "--use_cpu", "--deepspeed", "zero2", "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (
        printed["use_cpu"] is True and printed["deepspeed"] == "zero2"
    )  # asked for: as written, not the packaged path


@pytest.mark.parametrize(
    "argv", [["--task", "rte", "--r", "16"], ["--task", "mrpc", "--per_device_train_batch_size", "16"]]
)
def test_the_printed_config_resolves_the_same_under_any_number_of_processes(argv, tmp_path, capsys, monkeypatch):
    assert main(["glue", *argv, "--print_config"]) == 0  # printed by one process
    path = tmp_path / "printed.yaml"
    path.write_text(capsys.readouterr().out)
    for processes in (1, 2, 4, 8):  # as torchrun's WORLD_SIZE would say (without starting torch.distributed)
        monkeypatch.setattr(settings, "world_size", lambda processes=processes: processes)
        original, again = resolve("glue", argv), resolve("glue", [], config_files=[str(path)])
        assert again.settings() == original.settings()
        assert again.training.gradient_accumulation_steps == 256 // (
            original.training.per_device_train_batch_size * processes
        )
        assert main(["glue", "--config", str(path), "--print_config"]) == 0
        assert capsys.readouterr().out == path.read_text()  # and prints itself back


def test_print_config_is_valid_yaml_whatever_the_environment(tmp_path):
    # transformers prints "[INFO] Running in WANDB offline mode" on importing its W&B integration
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-m", "goat.train", "glue", "--task", "rte", "--print_config"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("# python -m goat.train glue") and yaml.safe_load(result.stdout)["task"] == "rte"
    assert "[INFO]" not in result.stdout


def test_help_lists_the_familys_settings_with_defaults(capsys):
    assert main(["glue", "--task", "rte", "--help"]) == 0
    glue = " ".join(capsys.readouterr().out.split())  # the help wraps lines
    assert "--prompt_style" in glue and "--learning_rate" in glue and "(default: 0.0001)" in glue
    assert "--backbone" not in glue and "--max_new_tokens" not in glue and "--fsdp" not in glue  # vision, causal, rare
    assert main(["vision", "--help"]) == 0
    vision = capsys.readouterr().out
    assert "--backbone" in vision and "--prompt_style" not in vision
    assert main(["glue", "--help_all"]) == 0
    assert "--fsdp" in capsys.readouterr().out
