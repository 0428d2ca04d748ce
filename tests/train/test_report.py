"""The results table averages only complete runs of one configuration over distinct seeds, and lists the rest."""

from __future__ import annotations

import math
import statistics

import pytest

from goat.report.table import format_table, main, summarise
from goat.train.results import ResultRow, append_result, read_results

BASE = {"method": "goat", "r": 8, "learning_rate": 1e-4, "num_train_epochs": 2.0}


def _run(
    root,
    run_id: str,
    values: list[float],
    *,
    seed: int = 0,
    task: str = "rte",
    status_last: str = "complete",
    time: str = "2026-01-01T00:00:00",
    **settings,
) -> None:
    """One run's epoch rows through the real writer: earlier epochs incomplete, the last one ``status_last``."""
    hparams = {**BASE, **settings, "task": task, "seed": seed}
    for epoch, value in enumerate(values, start=1):
        status = status_last if epoch == len(values) else "incomplete"
        append_result(
            root,
            ResultRow(
                family="glue",
                task=task,
                method=hparams["method"],
                model_name_or_path="m",
                seed=seed,
                epoch=float(epoch),
                metric="accuracy",
                value=value,
                params_pct=1.0,
                trainable_params=1,
                run_name=run_id.split("@")[0],
                run_id=run_id,
                time=time,
                status=status,
                hparams=hparams,
            ),
        )


def test_best_epoch_of_each_complete_run_then_mean_and_sample_std_over_seeds(tmp_path):
    _run(tmp_path, "a@0", [0.70, 0.80], seed=0)
    _run(tmp_path, "a@1", [0.84, 0.83], seed=1)
    _run(tmp_path, "a@2", [0.60, 0.90], seed=2)
    _run(tmp_path, "l@0", [0.75], seed=0, method="lora")
    tasks, table = summarise(read_results(tmp_path, "glue"))
    mean, std, n = table["goat"]["rte"]
    assert tasks == ["rte"] and n == 3
    assert mean == pytest.approx(statistics.mean([80.0, 84.0, 90.0]))
    assert std == pytest.approx(statistics.stdev([80.0, 84.0, 90.0]))  # sample std, not population
    assert table["lora"]["rte"] == (pytest.approx(75.0), 0.0, 1)


def test_runs_at_other_learning_rates_are_other_rows_never_averaged(tmp_path):
    _run(tmp_path, "a@0", [0.80], learning_rate=5e-4)
    _run(tmp_path, "b@0", [0.50], learning_rate=1e3)
    _, table = summarise(read_results(tmp_path, "glue"))
    assert set(table) == {"goat (learning_rate=0.0005)", "goat (learning_rate=1000.0)"}
    assert table["goat (learning_rate=0.0005)"]["rte"][0] == pytest.approx(80.0)


def test_a_rank_sweep_is_not_averaged_either(tmp_path):
    for r, value in ((8, 0.7), (32, 0.9)):
        _run(tmp_path, f"r{r}@0", [value], r=r)
    assert set(summarise(read_results(tmp_path, "glue"))[1]) == {"goat (r=8)", "goat (r=32)"}


def test_killed_partial_runs_and_reruns_count_once(tmp_path, capsys):
    _run(tmp_path, "k1@0", [0.50], status_last="incomplete")  # killed after epoch 1
    _run(tmp_path, "k2@0", [0.55], status_last="incomplete")  # killed again
    _run(tmp_path, "full@0", [0.60, 0.70], time="2026-01-02T00:00:00")
    _run(tmp_path, "again@0", [0.65, 0.75], time="2026-01-03T00:00:00")  # a rerun of seed 0: the latest counts
    _, table = summarise(read_results(tmp_path, "glue"))
    assert table["goat"]["rte"] == (pytest.approx(75.0), 0.0, 1)
    assert main(["--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| goat | 75.00 (n=1) | 75.00 |" in out
    assert out.count("- incomplete (killed or still running)") == 2
    assert "1 complete rerun(s) of a configuration and seed superseded" in out


def test_diverged_and_pending_runs_are_listed_not_averaged_and_nan_does_not_crash(tmp_path, capsys):
    _run(tmp_path, "ok@0", [0.80])
    _run(tmp_path, "ok@1", [0.70], seed=1)
    _run(tmp_path, "div@2", [0.70, math.nan], seed=2, status_last="diverged")
    _run(tmp_path, "chat@0", [math.nan, math.nan], task="mtbench", status_last="pending")
    assert main(["--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| goat | 75.00 ± 7.07 (n=2) | 75.00 |" in out
    assert "- diverged (diverged: no result): div (seed 2" in out
    assert "- pending (metric awaits its judge (e.g. MT-Bench)): chat" in out
    assert "mtbench" not in out.splitlines()[1]  # no column for a task without a complete result


def test_table_orders_by_average_and_marks_smoke_runs(tmp_path, capsys):
    rows = [
        {
            "run_id": "g",
            "run_name": "g",
            "method": "goat",
            "task": "rte",
            "seed": 0,
            "epoch": 1,
            "value": 0.8,
            "status": "complete",
            "hparams": BASE,
        },
        {
            "run_id": "l",
            "run_name": "l",
            "method": "lora",
            "task": "rte",
            "seed": 0,
            "epoch": 1,
            "value": 0.7,
            "status": "complete",
            "hparams": {**BASE, "method": "lora"},
        },
    ]
    lines = format_table(*summarise(rows)).splitlines()
    assert lines[0] == "| configuration | rte | avg |"
    assert lines[2].startswith("| goat |") and lines[3].startswith("| lora |")
    append_result(
        tmp_path,
        ResultRow(
            family="glue",
            task="rte",
            method="goat",
            model_name_or_path="m",
            seed=0,
            epoch=1.0,
            metric="accuracy",
            value=0.5,
            params_pct=1.0,
            trainable_params=1,
            run_name="r",
            run_id="r0",
            time="t",
            smoke=True,
        ),
    )
    assert main(["--results-dir", str(tmp_path)]) == 0
    assert "SMOKE RUN" in capsys.readouterr().out
    assert main(["--results-dir", str(tmp_path / "none")]) == 2
