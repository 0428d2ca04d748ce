"""The paper-style table: best epoch per run, mean over seeds, average over tasks."""

from __future__ import annotations

import pytest

from goat.report import best_per_run, format_table, main, summarise
from goat.train.results import ResultRow, append_result


def _row(method: str, task: str, seed: int, epoch: int, value: float) -> dict:
    return {"run_id": f"{method}-{task}-{seed}", "method": method, "task": task, "seed": seed, "epoch": epoch, "value": value}


ROWS = [
    _row("goat", "rte", 0, 1, 0.70), _row("goat", "rte", 0, 2, 0.80), _row("goat", "rte", 1, 1, 0.84),
    _row("goat", "cola", 0, 1, 0.60), _row("lora", "rte", 0, 1, 0.75), _row("lora", "cola", 0, 1, 0.50),
]  # fmt: skip


def test_best_epoch_per_run_then_mean_over_seeds():
    assert {r["run_id"]: r["value"] for r in best_per_run(ROWS)}["goat-rte-0"] == 0.80
    tasks, table = summarise(ROWS)
    assert tasks == ["cola", "rte"]
    mean, std, n = table["goat"]["rte"]
    assert (mean, n) == (pytest.approx(82.0), 2) and std == pytest.approx(2.0)


def test_table_has_average_column_and_orders_by_it():
    text = format_table(*summarise(ROWS))
    lines = text.splitlines()
    assert lines[0] == "| method | cola | rte | avg |"
    assert lines[2].startswith("| goat | 60.00 | 82.00 ± 2.00 | 71.00 |")
    assert lines[3] == "| lora | 50.00 | 75.00 | 62.50 |"


def test_cli_reads_results_files(tmp_path, capsys):
    for seed, value in ((0, 0.5), (1, 0.7)):
        append_result(tmp_path, ResultRow(
            family="glue", task="rte", method="goat", model="m", seed=seed, epoch=1.0, metric="accuracy", value=value,
            params_pct=1.0, trainable_params=1, run_name="r", run_id=f"r{seed}", time="t", smoke=True,
        ))  # fmt: skip
    assert main(["--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SMOKE RUN" in out and "| goat | 60.00 ± 10.00 | 60.00 |" in out
    assert main(["--results-dir", str(tmp_path / "none")]) == 2
