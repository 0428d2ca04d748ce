"""A diverged run is an error, never a result: it stops at once, exits non-zero and saves no adapter."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import TrainingArguments

import goat
from goat.report.table import main as report_main
from goat.train.__main__ import EXIT_DIVERGED, main
from goat.train.results import read_results
from goat.train.trainer import DivergenceError, GoatTrainer
from tests.conftest import tiny_roberta


def _diverging_run(tiny_model_dir, rte_dir, tmp_path) -> list[str]:
    """A GLUE run at learning rate 1e30: it diverges within its first epoch."""
    return [
        "glue",
        "--task",
        "rte",
        "--model_name_or_path",
        str(tiny_model_dir),
        "--data-dir",
        str(rte_dir),
        "--learning_rate",
        "1e30",
        "--num_train_epochs",
        "2",
        "--global_batch_size",
        "8",
        "--per_device_train_batch_size",
        "8",
        "--warmup-steps",
        "0",
        "--report-to",
        "none",
        "--output-dir",
        str(tmp_path / "out"),
        "--results-dir",
        str(tmp_path / "res"),
    ]


def test_a_huge_learning_rate_stops_the_run_with_one_line_and_no_adapter(tiny_model_dir, rte_dir, tmp_path, capsys):
    argv = _diverging_run(tiny_model_dir, rte_dir, tmp_path)
    code = main(argv)
    assert code == EXIT_DIVERGED
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: training diverged at step ") and "learning rate" in last and "1e+30" in last
    (run,) = (tmp_path / "out" / "glue").iterdir()
    assert (
        not (run / "adapter").exists() and not (run / "adapter-last").exists() and not (run / "summary.json").exists()
    )
    assert not list(run.glob("checkpoint-*"))  # it diverged within the first epoch, before any checkpoint
    rows = read_results(tmp_path / "res", "glue")
    assert [r["status"] for r in rows] == ["diverged"] and math.isnan(rows[0]["value"])
    events = [json.loads(line) for line in (run / "attempts.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "end" and events[-1]["status"] == "diverged"

    assert report_main(["--results-dir", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "(no complete run yet)" in out and "- diverged (diverged: no result)" in out
    # --resume of a diverged run is refused: a new learning rate is a new run.
    resumed = main([*argv, "--resume"])
    assert resumed == 2 and "diverged" in capsys.readouterr().err


def test_a_non_finite_gradient_norm_alone_is_divergence(tmp_path):
    model = goat.get_goat_model(tiny_roberta(), goat.GoatConfig(r=4, num_experts=4, target_modules=["query"]))
    trainer = GoatTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True))
    trainer._check_finite(torch.tensor(3.0))  # finite: nothing happens
    with pytest.raises(DivergenceError, match=r"non-finite gradient norm \(inf\)"):
        trainer._check_finite(torch.tensor(float("inf")))


def test_the_process_group_is_destroyed_after_a_diverged_run_too(tiny_model_dir, rte_dir, tmp_path, monkeypatch):
    """A torchrun process that leaves its gloo group alive can abort at exit (SIGABRT) after training
    correctly; the CLI ends accelerate's training on every way out of training, a divergence included."""
    from accelerate import Accelerator

    closed = []
    end_training = Accelerator.end_training
    monkeypatch.setattr(Accelerator, "end_training", lambda self: closed.append(True) or end_training(self))
    assert main(_diverging_run(tiny_model_dir, rte_dir, tmp_path)) == EXIT_DIVERGED
    assert closed == [True]


def test_a_live_process_group_is_gone_after_the_cli_returns(tiny_model_dir, rte_dir, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert main(_diverging_run(tiny_model_dir, rte_dir, tmp_path)) == EXIT_DIVERGED
        assert not dist.is_initialized()
    finally:  # a group left alive would make every later test in this process look distributed
        if dist.is_initialized():
            dist.destroy_process_group()
