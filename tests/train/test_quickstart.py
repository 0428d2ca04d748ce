"""The README's first command, at toy size: every method trains, the table and the plot are written."""

from __future__ import annotations

from goat.quickstart.run import main
from goat.train.results import read_results


def test_quickstart_table_and_plot(tmp_path, capsys):
    out = tmp_path / "qs"
    assert (
        main(["--methods", "goat", "lora", "--max_train_samples", "32", "--max_eval_samples", "32", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "| configuration | tweet_sentiment | avg |" in printed and "not a paper reproduction" in printed
    rows = read_results(out, "glue")
    assert sorted(r["method"] for r in rows) == ["goat", "lora"] and all(r["smoke"] for r in rows)
    assert (out / "quickstart.png").stat().st_size > 10_000


def test_each_method_runs_at_its_stored_rate_and_the_output_says_where_it_came_from(tmp_path, capsys, monkeypatch):
    from goat.quickstart import run as quickstart
    from goat.quickstart.rates import read_rates, write_rates

    rates_file = tmp_path / "quickstart.yaml"
    write_rates({"goat": 2e-3}, {"goat": "bracketed at 0.002, mean 70.00"}, rates_file)
    monkeypatch.setattr(quickstart, "read_rates", lambda: read_rates(rates_file))
    out = tmp_path / "qs"
    assert (
        quickstart.main(
            ["--methods", "goat", "lora", "--max_train_samples", "16", "--max_eval_samples", "16", "--out", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "goat 0.002" in printed
        and "python -m goat.quickstart --tune" in printed
        and "untuned" in printed
        and "lora" in printed
    )
    rates = {r["method"]: r["hparams"]["learning_rate"] for r in read_results(out, "glue")}
    assert rates["goat"] == 2e-3 and rates["lora"] == 5e-4  # lora has no stored rate: the YAML's shared one


def test_tune_runs_the_bracketing_search_until_decided_and_stores_only_bracketed_rates(tmp_path, monkeypatch):
    import math

    from goat.claims import executor
    from goat.claims.ledger import OK, Record
    from goat.quickstart import rates as quickstart_rates

    def fake_training(ledger, workers):  # each method peaks at its own rate; no model is trained
        peaks = {"goat": 4e-3, "lora": 1e-3}
        for config in list(ledger.requested.values()):
            if config.method == "pissa":  # rising forever: never bracketed
                value = 50 + math.log2(config.learning_rate) * 10
            else:
                value = 70 - abs(math.log2(config.learning_rate / peaks[config.method]))
            ledger.add(Record(config, OK, value, 1.0))

    monkeypatch.setattr(executor, "train_requested", fake_training)
    stored = tmp_path / "quickstart.yaml"
    monkeypatch.setattr(quickstart_rates, "rates_file", lambda: stored)
    outcome = quickstart_rates.tune(
        ["goat", "lora", "pissa"],
        8,
        tmp_path / "tune",
        1,
        max_train_samples=2000,
        max_eval_samples=1000,
        num_train_epochs=1.0,
    )
    rates = quickstart_rates.read_rates(stored)
    assert rates.learning_rate == {"goat": 4e-3, "lora": 1e-3} and rates.found_by == "python -m goat.quickstart --tune"
    assert "not bracketed" in outcome["pissa"] and "bracketed at 0.004" in outcome["goat"]
