"""The bracketing learning-rate search and seed growth, on ledgers whose records are written by hand."""

from __future__ import annotations

import math
import statistics

import pytest

from goat.claims import arms, stats
from goat.claims.ledger import DIVERGED, OK, Config, Ledger, Record, read_records, run_settings
from goat.claims.scale import Effect
from goat.claims.section import Comparison
from goat.train.settings import resolve

BASE = Config("glue", "tweet_sentiment", "goat", learning_rate=1e-3, seed=0)


def fill(ledger: Ledger, score) -> int:
    """Record every requested run with ``score(config)`` (None: diverged); returns how many."""
    requested = list(ledger.requested.values())
    for config in requested:
        value = score(config)
        ledger.add(Record(config, OK if value is not None else DIVERGED, value, 1.0))
    return len(requested)


def search(tmp_path, score, start=(2.5e-4, 5e-4, 1e-3), seeds=(0, 1), max_extensions=4):
    """Run the search to its end, as the ledger's rounds would: tune, train what it asked for, tune again."""
    ledger = Ledger(tmp_path / "runs.jsonl")
    for _ in range(20):
        ledger.requested.clear()
        arm = arms.tune(ledger, "goat", BASE, start, seeds, max_extensions=max_extensions)
        if not fill(ledger, score):
            return arm, ledger
    raise AssertionError("the search never settled")


def peaked(at: float, diverge_above: float = math.inf):
    return lambda c: (
        None if c.learning_rate > diverge_above else 70.0 - abs(math.log2(c.learning_rate / at)) + 0.1 * c.seed
    )


def test_search_extends_toward_the_best_edge_until_bracketed(tmp_path):
    arm, _ = search(tmp_path, peaked(4e-3))
    assert arm.bracketed and arm.complete and arm.best_learning_rate == 4e-3
    assert sorted(arm.curve) == [2.5e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3]  # one rate past the best, none further


def test_search_extends_downward_too(tmp_path):
    arm, _ = search(tmp_path, peaked(6.25e-5))
    assert arm.bracketed and arm.best_learning_rate == 6.25e-5 and min(arm.curve) == 3.125e-5


def test_a_search_where_every_rate_scores_the_same_is_flat_and_stops(tmp_path):
    """One epoch of the drug reviews: every rate predicts the majority class (249 of 379 reviews)."""
    arm, ledger = search(tmp_path, lambda c: 100 * 248 / 379)
    assert arm.flat and arm.complete and not arm.bracketed
    assert sorted(arm.curve) == [1.25e-4, 2.5e-4, 5e-4, 1e-3, 2e-3]  # both edges tried once, then it stops
    assert arm.best_learning_rate == 5e-4 and "flat" in arm.status() and "65.44" in arm.status()
    comparison = Comparison("goat", "lora", None, Effect(1.3, "Table 4"), (arm,))
    assert comparison.verdict == stats.NOT_BRACKETED  # a flat search names no best rate to compare at


def test_one_example_apart_is_not_flat(tmp_path):
    arm, _ = search(tmp_path, lambda c: 100 * (248 + (c.learning_rate > 1.5e-3)) / 379)
    assert not arm.flat and arm.best_learning_rate >= 2e-3  # widening found a better edge: it is searched
    arm, _ = search(tmp_path / "seeds", lambda c: 100 * (248 + (c.learning_rate < 3e-4 and c.seed == 1)) / 379)
    assert not arm.flat  # a tie of the means must hold on every sweep seed's mean, not on one seed


def test_a_diverged_neighbour_brackets_the_optimum(tmp_path):
    arm, _ = search(tmp_path, peaked(1e-2, diverge_above=1.5e-3))
    assert (
        arm.bracketed and arm.best_learning_rate == 1e-3 and arm.diverged_runs == 2
    )  # 2e-3 diverged on both sweep seeds


def test_a_rate_where_one_seed_diverged_is_never_best(tmp_path):
    score = lambda c: None if (c.learning_rate == 5e-4 and c.seed == 1) else peaked(5e-4)(c)  # noqa: E731
    arm, _ = search(tmp_path, score)
    assert arm.complete and arm.best_learning_rate != 5e-4


def test_search_gives_up_unbracketed_after_its_extensions(tmp_path):
    arm, _ = search(tmp_path, peaked(1.0), max_extensions=2)
    assert arm.complete and not arm.bracketed and arm.best_learning_rate == max(arm.curve) == 4e-3
    assert "not bracketed" in arm.status()


def test_search_resumes_from_the_record_file_without_new_runs(tmp_path):
    _, ledger = search(tmp_path, peaked(1e-3))
    reread = Ledger(ledger.record_file)
    arm = arms.tune(reread, "goat", BASE, (2.5e-4, 5e-4, 1e-3), (0, 1))
    assert arm.bracketed and not reread.requested


def test_tuned_arm_runs_more_seeds_only_at_its_best_rate(tmp_path):
    arm, ledger = search(tmp_path, peaked(1e-3))
    ledger.requested.clear()
    arm.at(ledger, [0, 1, 2, 3])
    assert {c.learning_rate for c in ledger.requested.values()} == {1e-3}
    assert sorted(c.seed for c in ledger.requested.values()) == [2, 3]


def test_grow_seeds_depends_on_the_spread_not_the_mean():
    spread = {0: 1.0, 1: -1.0, 2: 0.5, 3: -0.5, 4: 0.0}
    small = arms.grow_seeds(
        {s: 70 + d for s, d in spread.items()}, {s: 70.0 for s in spread}, list(range(12)), 1.0, 5, 12
    )
    shifted = arms.grow_seeds(
        {s: 75 + d for s, d in spread.items()}, {s: 70.0 for s in spread}, list(range(12)), 1.0, 5, 12
    )
    assert small == shifted
    needed = stats.seeds_to_resolve(statistics.stdev(spread.values()), 1.0)
    assert 5 < needed <= 12 and small == list(range(needed))  # the floor's spread asks for more seeds: it gets them
    noisy = {0: 3.0, 1: -3.0, 2: 1.5, 3: -1.5, 4: 0.0}
    kept = arms.grow_seeds({s: 70 + d for s, d in noisy.items()}, {s: 70.0 for s in noisy}, list(range(12)), 1.0, 5, 12)
    assert stats.seeds_to_resolve(statistics.stdev(noisy.values()), 1.0) > 12
    assert kept == list(range(5))  # δ = 1 is out of reach within the cap: the floor, not the cap
    assert arms.grow_seeds({}, {}, list(range(12)), 1.0, 5, 12) == list(range(5))


def test_grown_seeds_are_fixed_once_the_floor_has_run():
    """Only the floor's seeds decide: later seeds, however wild, never shrink or grow the answer (no optional stopping)."""
    floor = {0: 1.0, 1: -1.0, 2: 0.5, 3: -0.5, 4: 0.0}
    first = arms.grow_seeds(
        {s: 70 + d for s, d in floor.items()}, {s: 70.0 for s in floor}, list(range(12)), 1.0, 5, 12
    )
    later = {**floor, **{s: 30.0 * (-1) ** s for s in range(5, len(first))}}
    again = arms.grow_seeds(
        {s: 70 + d for s, d in later.items()}, {s: 70.0 for s in later}, list(range(12)), 1.0, 5, 12
    )
    assert again == first
    missing = {s: 70.0 + d for s, d in floor.items() if s != 3}  # a floor seed not yet run: the floor only
    assert arms.grow_seeds(missing, {s: 70.0 for s in floor}, list(range(12)), 1.0, 5, 12) == list(range(5))


def test_records_round_trip_and_settings_are_real_cli_settings(tmp_path):
    ledger = Ledger(tmp_path / "runs.jsonl")
    record = Record(BASE, OK, 71.5, 3.0, 0.2, 0.05, [[5, 1.0], [10, 0.8]], 40.0)
    ledger.add(record)
    assert read_records(ledger.record_file) == {BASE.key(): record}
    config = resolve("glue", [], overrides={**run_settings(BASE), "task": "tweet_sentiment", "seed": 0})
    assert config.training.learning_rate == BASE.learning_rate and config.adapter.r == BASE.r
    assert config.training.train_sampling_strategy == "group_by_length"
    causal = resolve("commonsense", [], overrides={**run_settings(BASE), "task": "tweet_sentiment", "seed": 0})
    assert causal.training.eval_on_start is False  # the causal YAML's zero-shot pass is off in the ledger


def test_a_torn_last_line_is_skipped(tmp_path):
    ledger = Ledger(tmp_path / "runs.jsonl")
    ledger.add(Record(BASE, OK, 71.5, 3.0))
    with ledger.record_file.open("a") as handle:
        handle.write('{"config": {"family": "gl')
    assert len(read_records(ledger.record_file)) == 1


@pytest.mark.parametrize("lr, expected", [(1e-3, 2e-3), (2.5e-4, 5e-4)])
def test_neighbours_are_on_the_x2_grid(lr, expected):
    assert arms.neighbour(lr, +1) == expected and arms.neighbour(expected, -1) == lr
