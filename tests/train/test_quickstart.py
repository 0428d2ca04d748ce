"""The README's first command, at toy size: every method trains, the table and the plot are written."""

from __future__ import annotations

from goat.quickstart import main
from goat.train.results import read_results


def test_quickstart_table_and_plot(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["--methods", "goat", "lora", "--max_train_samples", "32", "--max_eval_samples", "32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| configuration | tweet_sentiment | avg |" in printed and "not a paper reproduction" in printed
    rows = read_results(out, "glue")
    assert sorted(r["method"] for r in rows) == ["goat", "lora"] and all(r["smoke"] for r in rows)
    assert (out / "quickstart.png").stat().st_size > 10_000
