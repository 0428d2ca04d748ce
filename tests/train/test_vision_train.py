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
from goat.train.args import build_parser, parse_args
from goat.train.results import read_results
from goat.train.runner import prepare, train
from goat.train.vision import load_splits

ROOT = Path(__file__).resolve().parents[2]
TABLE10_EPOCHS = {"cars": 35, "dtd": 76, "eurosat": 12, "gtsrb": 11, "resisc45": 15, "sun397": 14, "svhn": 4}
# 32 digits at 16 per step: one epoch of two optimiser steps.
TWO_STEPS = ["--max-train-samples", "32", "--max-eval-samples", "20", "--batch-size", "16", "--per-device-batch", "16",
             "--epochs", "1", "--warmup-steps", "0", "--logging-steps", "1", "--report-to", "none"]  # fmt: skip


def _flags(tmp_path: Path, *extra: str) -> list[str]:
    return ["vision", *extra, "--output-dir", str(tmp_path / "out"), "--results-dir", str(tmp_path / "res")]


def test_yaml_defaults_are_table1_and_table10() -> None:
    for task, epochs in TABLE10_EPOCHS.items():
        args = parse_args(["vision", "--task", task])
        assert args.epochs == epochs and not args.smoke
        assert (args.model, args.backbone, args.head) == ("openai/clip-vit-base-patch32", "hf", "linear")
        assert (args.rank, args.alpha, args.experts, args.top_k, args.dropout) == (8, 16, 8, 2, 0.05)
        assert (args.lr, args.batch_size, args.warmup_steps, args.aux_loss_coef) == (1e-4, 512, 100, 1e-3)
        assert args.val_holdout and args.bf16
    smoke = parse_args(["vision", "--task", "digits"])
    assert smoke.smoke and smoke.model == "smoke" and not smoke.bf16


def test_help_lists_the_vision_flags() -> None:
    text = build_parser().format_help()  # argparse %-formats help strings: a stray % would crash --help
    assert all(flag in text for flag in ("--backbone", "--pretrained", "--head", "--no-val-holdout"))


def test_two_step_smoke_run_trains_adapters_and_head_only(tmp_path, caplog) -> None:
    prepared = prepare(parse_args(_flags(tmp_path, "--task", "digits", "--method", "goat", *TWO_STEPS)))
    model = prepared.trainer.model
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    summary = train(prepared)
    assert prepared.trainer.state.global_step == 2
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert changed <= trainable  # frozen weights (W0 - W_res, embeddings, norms) never move
    assert {"base_model.classifier.weight", "base_model.classifier.bias"} <= changed
    assert any(".lora_A" in n for n in changed) and any(".lora_B" in n for n in changed) and any(".router." in n for n in changed)
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
    flags = _flags(tmp_path, "--task", "dtd", "--data-dir", str(data), "--model", "smoke", "--smoke", "--method", "goat",
                   "--batch-size", "9", "--per-device-batch", "9", "--epochs", "1", "--no-bf16",
                   "--warmup-steps", "0", "--report-to", "none")  # fmt: skip
    args = parse_args(flags)
    raw, templates = load_splits(args)
    assert len(raw["train"]) == 27 and len(raw["test"]) == 6  # 10 % of 30 held out (seed 0), as the authors
    assert "a photo of a {} texture." in templates
    args.val_holdout = False
    assert len(load_splits(args)[0]["train"]) == 30

    prepared = prepare(parse_args(flags))
    assert prepared.trainer.model.config.id2label == {0: "banded", 1: "dotted", 2: "striped"}
    summary = train(prepared)
    assert prepared.trainer.state.global_step == 3 and 0.0 <= summary["best"]["accuracy"] <= 1.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task", "digits", "--no-smoke"], "pass --smoke"),
        (["--task", "digits", "--data-dir", "/data"], "drop --data-dir"),
        (["--task", "digits", "--head", "zeroshot"], "--head zeroshot needs --backbone open_clip"),
        (["--task", "digits", "--backbone", "vit"], "--backbone 'vit': choose one of hf, open_clip"),
        (["--task", "cars", "--backbone", "open_clip"], "not an open_clip architecture"),
        (["--task", "eurosat", "--data-dir", "/nonexistent/images"], "cannot load EuroSAT"),
        (["--task", "digits", "--model", "/nonexistent/model", "--smoke"], "cannot load '/nonexistent/model'"),
        (["--task", "imagenet"], "'imagenet' is not in vision.yaml"),
    ],
)
def test_user_errors_are_one_line(flags, message, capsys, tmp_path) -> None:
    assert main(_flags(tmp_path, *flags, "--report-to", "none")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_vit_sh_is_valid_bash_with_its_variables_on_top() -> None:
    script = (ROOT / "vit.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "vit.sh")]).returncode == 0
    for variable in ("METHOD", "BACKBONE", "MODEL", "RANK", "ALPHA", "EXPERTS", "K", "GPUS", "TASKS", "SEEDS", "OUT_DIR"):
        assert f"\n{variable}=" in script
    # torchrun + DeepSpeed when GPUS > 1 comes from scripts/launch.sh (tests/test_task_drivers.py)
    assert "\nDEEPSPEED=configs/deepspeed/zero2.json" in script and 'goat_train "$GPUS" "$DEEPSPEED" vision' in script
