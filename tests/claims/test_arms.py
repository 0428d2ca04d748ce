"""Learning-rate selection, resumption and diverged runs, on a ledger whose records are written by hand."""

from __future__ import annotations

from goat.claims import arms
from goat.claims.ledger import DIVERGED, OK, Config, Ledger, Record, read_records, run_settings
from goat.train.settings import resolve

BASE = Config("glue", "tweet_sentiment", "goat", lr=1e-3, seed=0)


def ledger_with(tmp_path, values: dict[tuple[float, int], float | None]) -> Ledger:
    """A ledger whose record file already holds ``(lr, seed) -> value`` (None: diverged)."""
    path = tmp_path / "claims" / "runs.jsonl"
    path.parent.mkdir(parents=True)
    lines = [Record(Config("glue", "tweet_sentiment", "goat", lr=lr, seed=seed), OK if v is not None else DIVERGED, v, 1.0).line()
             for (lr, seed), v in values.items()]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return Ledger(path, tmp_path / "results", tmp_path / "outputs", smoke=True)


def test_best_lr_skips_rates_where_a_sweep_seed_diverged():
    curve = {1e-4: {0: 60.0, 1: 61.0}, 1e-3: {0: 70.0, 1: None}, 3e-4: {0: 65.0, 1: 64.0}}
    assert arms.best_lr(curve, [0, 1]) == 3e-4
    assert arms.best_lr({1e-3: {0: None}}, [0]) is None


def test_tune_reads_recorded_runs_and_never_retrains(tmp_path):
    values = {(lr, s): 60.0 + 10 * (lr == 5e-4) + s for lr in (1e-4, 5e-4) for s in (0, 1, 2)}
    ledger = ledger_with(tmp_path, values)
    ledger._train = lambda config: (_ for _ in ()).throw(AssertionError(f"retrained {config}"))
    arm = arms.tune(ledger, "goat", BASE, [1e-4, 5e-4], seeds=[0, 1, 2], sweep_seeds=[0, 1], common_lr=1e-4)
    assert arm.best_lr == 5e-4
    assert arm.tuned == {0: 70.0, 1: 71.0, 2: 72.0} and arm.equal == {0: 60.0, 1: 61.0, 2: 62.0}
    assert arms.summary(arm.tuned).mean == 71.0


def test_diverged_runs_carry_no_number_and_pairs_drop_them(tmp_path):
    ledger = ledger_with(tmp_path, {(1e-3, 0): 70.0, (1e-3, 1): None, (1e-3, 2): 72.0})
    values = arms.run_arm(ledger, BASE, [0, 1, 2])
    assert values == {0: 70.0, 1: None, 2: 72.0} and arms.finished(values) == [70.0, 72.0]
    assert arms.tune(ledger, "goat", BASE, [1e-3], seeds=[0, 1, 2], sweep_seeds=[0], common_lr=None).diverged_runs == 1
    result = arms.compare(values, {0: 69.0, 1: 65.0, 2: 70.0})
    assert result.difference.n == 2 and result.difference.mean == 1.5
    assert arms.compare({0: 1.0, 1: None}, {0: 0.0, 1: 0.0}) is None


def test_planning_counts_missing_runs_without_training(tmp_path):
    ledger = ledger_with(tmp_path, {(1e-3, 0): 70.0})
    planner = Ledger(ledger.record_file, tmp_path, tmp_path, smoke=True, dry_run=True)
    arms.run_arm(planner, BASE, [0, 1, 2])
    assert sorted(c.seed for c in planner.planned.values()) == [1, 2]
    assert len(read_records(ledger.record_file)) == 1


def test_run_settings_are_training_settings():
    settings = run_settings(Config("glue", "tweet_sentiment", "lora", lr=2e-4, seed=3, rank=32, train_samples=640))
    assert settings["method"] == "lora" and settings["r"] == 32 and settings["lora_alpha"] == 64.0  # alpha = 2r
    assert settings["max_train_samples"] == 640 and settings["learning_rate"] == 2e-4
    assert "seed" not in settings  # the seed is the run's, set by goat.studies
    config = resolve("glue", [], overrides={**settings, "task": "tweet_sentiment"})  # every name is a real setting
    assert (config.adapter.r, config.adapter.lora_alpha, config.training.learning_rate) == (32, 64.0, 2e-4)


def test_a_best_rate_at_either_end_of_the_grid_is_flagged(tmp_path):
    grid = [1e-4, 5e-4, 1e-3]
    values = {(lr, s): {1e-4: 60.0, 5e-4: 65.0, 1e-3: 70.0}[lr] + s for lr in grid for s in (0, 1)}
    ledger = ledger_with(tmp_path, values)
    at_top = arms.tune(ledger, "goat", BASE, grid, seeds=[0, 1], sweep_seeds=[0, 1], common_lr=None)
    note = arms.grid_edge_note([at_top], grid)
    assert "goat (0.001)" in note and "edge of the swept grid (0.0001-0.001)" in note
    interior = arms.TunedArm("lora", BASE, {}, 5e-4, {}, {})
    assert arms.grid_edge_note([interior], grid) == ""
    assert "lora" not in arms.grid_edge_note([at_top, interior], grid)


def test_a_torn_last_record_from_a_killed_ledger_is_skipped(tmp_path):
    ledger = ledger_with(tmp_path, {(1e-3, 0): 70.0, (1e-3, 1): 71.0})
    text = ledger.record_file.read_text()
    ledger.record_file.write_text(text[: len(text) - 40])  # the second line cut mid-write
    assert [r.config.seed for r in read_records(ledger.record_file).values()] == [0]
