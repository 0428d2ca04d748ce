"""``goat.report --compare-paper`` and the published numbers it compares with."""

from __future__ import annotations

import csv

import pytest

from goat.report import paper as paper_results
from goat.report.table import main
from goat.train.results import ResultRow, append_result


@pytest.mark.parametrize("table", [paper_results.TABLE_1, paper_results.TABLE_3, paper_results.TABLE_4])
def test_printed_averages_match_the_typed_cells(table):
    # Catches typos: every printed Average is the mean of its row (the paper truncates, so 0.01 slack).
    for row, average in table.average.items():
        assert table.mean_of_row(row) == pytest.approx(average, abs=0.01), f"{table.table} {row}"
    assert all(len(values) == len(table.columns) for values in table.rows.values())


def test_every_family_has_a_table_and_aliases_resolve():
    assert paper_results.published_for("glue").table == "Table 4"
    assert (
        paper_results.canonical_task("SIQA") == "social_i_qa" and paper_results.canonical_task("metamathqa") == "gsm8k"
    )
    with pytest.raises(ValueError, match="no published table"):
        paper_results.published_for("nope")


def _append(root, task, method, value, seed=0, study=None, metrics=None, family="glue"):
    append_result(
        root,
        ResultRow(
            family=family,
            task=task,
            method=method,
            model_name_or_path="m",
            seed=seed,
            epoch=1.0,
            metric="accuracy",
            value=value,
            params_pct=1.0,
            trainable_params=1,
            run_name=f"{method}-{task}-{seed}",
            run_id=f"{method}-{task}-{seed}-{study}",
            time="t",
            metrics=metrics or {},
            hparams={"study": study},
        ),
    )


def test_compare_paper_lays_measured_beside_published(tmp_path, capsys):
    _append(tmp_path, "rte", "goat", 0.80, seed=0)
    _append(tmp_path, "rte", "goat", 0.90, seed=1)
    _append(tmp_path, "mnli", "goat", 0.70, metrics={"mnli_overall": 0.70})
    _append(tmp_path, "rte", "goat", 0.10, study="ablation")  # a study run: not in the main view
    out_csv = tmp_path / "compare.csv"
    assert main(["--results-dir", str(tmp_path), "--compare-paper", "--csv", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "paper Table 4 (§4.3)" in text
    assert "| goat (GOAT) | 70.00 / 89.55 (-19.55) | 85.00 / 85.56 (-0.56) | – / 89.76 |" in text
    assert "Paper rows without runs here: Full FT, Full FT MoE, LoRA" in text
    rows = {r["task"]: r for r in csv.DictReader(out_csv.open())}
    assert rows["rte"]["measured"] == "85.0" and rows["rte"]["paper"] == "85.56" and rows["rte"]["seeds"] == "2"
    assert float(rows["rte"]["difference"]) == pytest.approx(-0.56)


def test_study_runs_are_listed_with_study_only(tmp_path, capsys):
    _append(tmp_path, "rte", "goat", 0.10, study="ablation")
    assert main(["--results-dir", str(tmp_path)]) == 2
    assert main(["--results-dir", str(tmp_path), "--study", "ablation"]) == 0
    assert "| goat | 10.00 (n=1) | 10.00 |" in capsys.readouterr().out


def test_compare_paper_metrics_columns_and_errors(tmp_path, capsys):
    metrics = {"boolq_accuracy": 0.7, "social_i_qa_accuracy": 0.8, "avg_accuracy": 0.75}  # goat.train.causal's keys
    _append(tmp_path, "commonsense", "goat", 0.75, family="commonsense", metrics=metrics)
    _append(tmp_path, "mtbench", "goat", float("nan"), family="chat", metrics={"mtbench_pending": float("nan")})
    assert main(["--results-dir", str(tmp_path), "--family", "commonsense", "--compare-paper"]) == 0
    assert "| goat (GOAT) | 70.00 / 73.60 (-3.60) | 80.00 / 80.50 (-0.50) | – / 82.73 |" in capsys.readouterr().out
    assert (
        main(["--results-dir", str(tmp_path), "--family", "chat", "--compare-paper"]) == 2
    )  # not judged yet: nothing to compare
    _append(tmp_path, "tweet_sentiment", "goat", 0.6)
    assert main(["--results-dir", str(tmp_path), "--compare-paper"]) == 2
    assert "has a (finite) value in a column of paper Table 4" in capsys.readouterr().err
    assert main(["--results-dir", str(tmp_path), "--csv", "x.csv"]) == 2
