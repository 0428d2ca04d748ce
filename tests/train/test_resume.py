"""Checkpoints and --resume: a run SIGKILLed after its first epoch and resumed equals an uninterrupted run.

CPU runs are deterministic (one thread, same seeds, dropout RNG restored from the checkpoint), so the
comparison is exact: equal per-epoch rows, equal final metric and bit-identical adapter tensors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from goat.train.__main__ import main
from goat.train.results import read_results

EPOCHS = 3


def _command(model_dir: Path, data_dir: Path, root: Path, *extra: str) -> list[str]:
    return [
        "glue",
        "--task",
        "rte",
        "--model_name_or_path",
        str(model_dir),
        "--data-dir",
        str(data_dir),
        "--method",
        "goat",
        "--num_experts",
        "4",
        "--num_train_epochs",
        str(EPOCHS),
        "--global_batch_size",
        "8",
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "24",
        "--warmup-steps",
        "2",
        "--learning_rate",
        "2e-3",
        "--logging-steps",
        "1",
        "--report-to",
        "none",
        "--seed",
        "5",
        "--output-dir",
        str(root / "out"),
        "--results-dir",
        str(root / "res"),
        *extra,
    ]


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "goat.train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 120) -> None:
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("training subprocess did not finish in time")
    assert process.returncode == 0, stderr[-3000:]


def _run_folder(root: Path) -> Path:
    (folder,) = (root / "out" / "glue").iterdir()
    return folder


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_sigkill_after_first_epoch_then_resume_equals_an_uninterrupted_run(tiny_model_dir, rte_dir, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _finish(_start(_command(tiny_model_dir, rte_dir, whole)))

    process = _start(_command(tiny_model_dir, rte_dir, killed))
    deadline = time.time() + 120
    while not list((killed / "out").glob("glue/*/checkpoint-*/epoch_history.json")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    folder = _run_folder(killed)
    assert not (folder / "summary.json").exists() and not (folder / "adapter").exists()  # killed mid-run
    _finish(_start(_command(tiny_model_dir, rte_dir, killed, "--resume")))

    reference, resumed = read_results(whole / "res", "glue"), read_results(killed / "res", "glue")
    assert [r["epoch"] for r in resumed] == [float(e) for e in range(1, EPOCHS + 1)]  # exactly one row per epoch
    assert [(r["epoch"], r["value"], r["status"], r["config_hash"]) for r in resumed] == [
        (r["epoch"], r["value"], r["status"], r["config_hash"]) for r in reference
    ]
    assert len({r["run_id"] for r in resumed}) == 1  # the resumed attempt continues the same run
    assert resumed[-1]["status"] == "complete" and resumed[0]["status"] == "incomplete"
    summaries = [json.loads((_run_folder(root) / "summary.json").read_text()) for root in (whole, killed)]
    assert summaries[0]["best"] == summaries[1]["best"] and summaries[1]["resumed_from"].startswith("checkpoint-")
    for adapter in ("adapter", "adapter-last"):  # exact: tolerance 0
        expected, got = _tensors(_run_folder(whole) / adapter), _tensors(folder / adapter)
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected), adapter

    events = [json.loads(line) for line in (folder / "attempts.jsonl").read_text().splitlines()]
    assert [(e["event"], e["attempt"]) for e in events] == [("start", 1), ("start", 2), ("end", 2)]
    assert events[1]["resumed_from"].startswith("checkpoint-") and events[2]["status"] == "complete"


def test_best_epoch_adapter_and_kept_checkpoints(tiny_model_dir, rte_dir, tmp_path, capsys):
    args = _command(tiny_model_dir, rte_dir, tmp_path)
    assert main(args) == 0
    folder = _run_folder(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    # While training, the newest and the best checkpoints are kept; once the run is complete, transformers
    # keeps only the best one when save_total_limit is 1.
    (checkpoint,) = folder.glob("checkpoint-*")
    best_step = json.loads((checkpoint / "trainer_state.json").read_text())["best_global_step"]
    assert checkpoint.name == f"checkpoint-{best_step}" and summary["best_epoch"] == best_step // 6
    best_tensors = _tensors(checkpoint / "adapter")
    assert all(torch.equal(best_tensors[k], v) for k, v in _tensors(folder / "adapter").items())

    # Rerunning the same command: an error naming both ways out, before anything loads.
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    # --resume of a complete run: nothing to do.
    assert main([*args, "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert len(read_results(tmp_path / "res", "glue")) == EPOCHS
    # --resume with other settings: refused, naming the setting.
    checkpoint_run = [*args[:-2], "--run-name", folder.name, "--results-dir", str(tmp_path / "res")]
    (folder / "attempts.jsonl").write_text(
        "\n".join(folder.joinpath("attempts.jsonl").read_text().splitlines()[:-1]) + "\n"
    )
    assert main([*checkpoint_run, "--resume", "--aux-loss-coef", "0.5"]) == 2
    assert "aux_loss_coef: 0.001 -> 0.5" in capsys.readouterr().err


def test_resume_without_a_checkpoint_starts_fresh_with_a_notice(tiny_model_dir, rte_dir, tmp_path, caplog):
    args = [*_command(tiny_model_dir, rte_dir, tmp_path), "--resume"]
    args[args.index("--num_train_epochs") + 1] = "1"
    assert main(args) == 0
    assert "no checkpoint in" in caplog.text


def test_library_trainer_checkpoints_resume_with_plain_transformers_arguments(tmp_path):
    """GoatTrainer used directly: ``save_steps`` checkpoints and ``resume_from_checkpoint`` work as in transformers."""
    from datasets import Dataset
    from transformers import TrainingArguments

    import goat
    from goat.train.trainer import GoatTrainer
    from tests.conftest import ROBERTA_TARGETS, tiny_roberta

    gen = torch.Generator().manual_seed(0)
    data = Dataset.from_dict(
        {
            "input_ids": torch.randint(3, 100, (16, 8), generator=gen).tolist(),
            "labels": torch.randint(0, 3, (16,), generator=gen).tolist(),
        }
    )

    def trainer(folder: Path) -> GoatTrainer:
        config = goat.GoatConfig(r=8, num_experts=4, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"])
        args = TrainingArguments(
            output_dir=str(folder),
            per_device_train_batch_size=4,
            max_steps=4,
            save_steps=2,
            learning_rate=1e-2,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            seed=0,
        )
        return GoatTrainer(model=goat.get_goat_model(tiny_roberta(), config), args=args, train_dataset=data)

    whole = trainer(tmp_path / "whole")
    whole.train()
    resumed = trainer(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-2"))
    expected, got = whole.model.adapter_state_dict(), resumed.model.adapter_state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
