"""The vision family (paper Table 1) end to end on CPU: the smoke configuration through the real CLI.

Tiny random CLIPs of both backbones, scikit-learn's digits or a local ImageFolder fixture; two
optimiser steps per run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from goat.train.__main__ import main
from goat.train.results import read_results
from goat.train.runner import prepare, train
from goat.train.settings import help_text, resolve
from goat.train.vision import load_splits

ROOT = Path(__file__).resolve().parents[2]
TABLE10_EPOCHS = {"cars": 35, "dtd": 76, "eurosat": 12, "gtsrb": 11, "resisc45": 15, "sun397": 14, "svhn": 4}
# 32 digits at 16 per step: one epoch of two optimiser steps.
TWO_STEPS = [
    "--max_train_samples",
    "32",
    "--max_eval_samples",
    "20",
    "--global_batch_size",
    "16",
    "--per_device_train_batch_size",
    "16",
    "--num_train_epochs",
    "1",
    "--warmup_steps",
    "0",
    "--logging_steps",
    "1",
    "--report_to",
    "none",
]


def _flags(tmp_path: Path, *extra: str) -> list[str]:
    return ["vision", *extra, "--output_dir", str(tmp_path / "out"), "--results_dir", str(tmp_path / "res")]


def _config(flags: list[str]):
    return resolve(flags[0], flags[1:])


def test_yaml_defaults_are_table1_and_table10() -> None:
    for task, epochs in TABLE10_EPOCHS.items():
        config = resolve("vision", ["--task", task])
        data, adapter, training = config.data, config.adapter, config.training
        assert training.num_train_epochs == epochs and not training.smoke
        assert (data.model_name_or_path, data.backbone, data.head) == ("openai/clip-vit-base-patch32", "hf", "linear")
        assert (adapter.r, adapter.lora_alpha, adapter.num_experts, adapter.top_k, adapter.lora_dropout) == (
            8,
            16,
            8,
            2,
            0.05,
        )
        assert (training.learning_rate, training.global_batch_size, training.warmup_steps, adapter.aux_loss_coef) == (
            1e-4,
            512,
            100,
            1e-3,
        )
        assert data.val_holdout and training.bf16
    smoke = resolve("vision", ["--task", "digits"])
    assert smoke.training.smoke and smoke.data.model_name_or_path == "smoke" and not smoke.training.bf16


def test_help_lists_the_vision_flags() -> None:
    text = help_text("vision", [])  # argparse %-formats help strings: a stray % would crash --help
    assert all(flag in text for flag in ("--backbone", "--pretrained", "--head", "--no_val_holdout"))


def test_two_step_smoke_run_trains_adapters_and_head_only(tmp_path, caplog) -> None:
    prepared = prepare(_config(_flags(tmp_path, "--task", "digits", "--method", "goat", *TWO_STEPS)))
    model = prepared.trainer.model
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    summary = train(prepared)
    assert prepared.trainer.state.global_step == 2
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert changed <= trainable  # frozen weights (W0 - W_res, embeddings, norms) never move
    assert {"model.classifier.weight", "model.classifier.bias"} <= changed
    assert (
        any(".lora_A" in n for n in changed)
        and any(".lora_B" in n for n in changed)
        and any(".router." in n for n in changed)
    )
    assert len(model.adapted_names) == 2 * 6 and not any("classifier" in n for n in model.adapted_names)

    rows = read_results(tmp_path / "res", "vision")
    assert len(rows) == 1 and rows[0]["epoch"] == 1.0 and rows[0]["task"] == "digits"
    assert rows[0]["smoke"] is True and rows[0]["metric"] == "accuracy" and 0.0 <= rows[0]["value"] <= 1.0
    assert summary["smoke"] and summary["best"]["accuracy"] == rows[0]["value"]
    assert "SMOKE RUN" in caplog.text and "not a reproduction" in caplog.text


def test_open_clip_zeroshot_smoke_cli(tmp_path, capsys) -> None:
    flags = ["--task", "digits", "--backbone", "open_clip", "--head", "zeroshot", "--method", "lora", *TWO_STEPS]
    assert main(_flags(tmp_path, *flags)) == 0
    assert "(smoke run of the code path, not a reproduction)" in capsys.readouterr().out
    (row,) = read_results(tmp_path / "res", "vision")
    assert row["smoke"] is True and row["hparams"]["backbone"] == "open_clip"
    # The frozen zero-shot head has no parameters: only the rank-8 LoRA factors of the 12 linears train.
    assert row["trainable_params"] == 2 * 8 * (4 * (64 + 64) + 2 * (64 + 256))


def _imagefolder(root: Path, per_class: dict[str, int]) -> None:
    for split, scale in (("train", 1), ("test", 0)):
        for index, (name, count) in enumerate(per_class.items()):
            folder = root / split / name
            folder.mkdir(parents=True)
            for j in range(count * scale + 2):
                colour = tuple(250 if c == index else 0 for c in range(3))
                Image.new("RGB", (40 + j, 36), colour).save(folder / f"{j}.png")


def test_local_folder_task_drops_the_authors_holdout_and_trains(tmp_path) -> None:
    data = tmp_path / "dtd"
    _imagefolder(data, {"striped": 8, "dotted": 8, "banded": 8})  # 30 train, 6 test images
    flags = _flags(
        tmp_path,
        "--task",
        "dtd",
        "--data_dir",
        str(data),
        "--model_name_or_path",
        "smoke",
        "--smoke",
        "--method",
        "goat",
        "--global_batch_size",
        "9",
        "--per_device_train_batch_size",
        "9",
        "--num_train_epochs",
        "1",
        "--bf16",
        "false",
        "--warmup_steps",
        "0",
        "--report_to",
        "none",
    )
    args = _config(flags).data
    raw, templates = load_splits(args, seed=0)
    assert len(raw["train"]) == 27 and len(raw["test"]) == 6  # 10 % of 30 held out (seed 0), as the authors
    assert "a photo of a {} texture." in templates
    args.val_holdout = False
    assert len(load_splits(args, seed=0)[0]["train"]) == 30

    prepared = prepare(_config(flags))
    assert prepared.trainer.model.config.id2label == {0: "banded", 1: "dotted", 2: "striped"}
    summary = train(prepared)
    assert prepared.trainer.state.global_step == 3 and 0.0 <= summary["best"]["accuracy"] <= 1.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task", "digits", "--smoke", "false"], "pass --smoke"),
        (["--task", "digits", "--data_dir", "/data"], "drop --data_dir"),
        (["--task", "digits", "--head", "zeroshot"], "--head zeroshot needs --backbone open_clip"),
        (["--task", "digits", "--backbone", "vit"], "--backbone 'vit': choose one of hf, open_clip"),
        (["--task", "cars", "--backbone", "open_clip"], "not an open_clip architecture"),
        (["--task", "eurosat", "--data_dir", "/nonexistent/images"], "cannot load EuroSAT"),
        (
            ["--task", "digits", "--model_name_or_path", "/nonexistent/model", "--smoke"],
            "cannot load '/nonexistent/model'",
        ),
        (["--task", "imagenet"], "'imagenet' is not in vision.yaml"),
    ],
)
def test_user_errors_are_one_line(flags, message, capsys, tmp_path) -> None:
    assert main(_flags(tmp_path, *flags, "--report_to", "none")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_vit_sh_is_valid_bash_and_defers_to_the_yaml() -> None:
    script = (ROOT / "vit.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "vit.sh")]).returncode == 0
    for variable in ("METHOD", "TASKS", "SEEDS", "OUTPUT_DIR", "RESULTS_DIR"):
        assert f'\n{variable}="${{{variable}:-' in script
    # torchrun + DeepSpeed when GPUS > 1 comes from scripts/launch.sh (tests/test_task_drivers.py)
    assert 'goat_sweep vision "$@"' in script  # one run per task and seed: goat_sweep in scripts/launch.sh
