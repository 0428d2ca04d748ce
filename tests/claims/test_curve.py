"""The regime rule of :mod:`goat.claims.curve` on made-up tuned accuracies, including a curve that is still rising."""

from __future__ import annotations

import math
from dataclasses import replace

from goat.claims.arms import TunedArm
from goat.claims.curve import CURVE_METHODS, Curve, base_config, choose_regime, learning_curve
from goat.claims.ledger import OK, Ledger, Record
from goat.claims.scale import CLASSIFIER

TASK = replace(CLASSIFIER, budgets=((500, 1.0), (1000, 1.0), (2000, 1.0)), plateau_tolerance=1.0)


def curve_of(accuracy: dict[str, tuple[float, ...]]) -> Curve:
    """A decided curve whose tuned accuracy of each method at each budget (in TASK's order) is given."""
    arms = {}
    for method in CURVE_METHODS:
        for budget, value in zip(TASK.budgets, accuracy[method], strict=True):
            seeds = {seed: value for seed in TASK.curve_seeds}
            arms[method, budget] = TunedArm(
                f"{method}", base_config(TASK, method, budget), {1e-3: seeds}, 1e-3, True, True, dict(seeds)
            )
    return Curve(TASK, arms, None, "")


def test_the_smallest_budget_near_both_plateaus_is_chosen_without_a_caveat():
    budget, reason = choose_regime(curve_of({"lora": (60.0, 70.0, 70.5), "goat": (61.0, 69.5, 70.0)}))
    assert budget == (1000, 1.0)
    assert "smallest budget within 1 points of both plateaus" in reason and "not established" not in reason


def test_a_curve_still_rising_at_its_largest_budget_says_the_plateau_is_not_established():
    budget, reason = choose_regime(curve_of({"lora": (60.0, 70.0, 72.0), "goat": (61.0, 71.0, 71.5)}))
    assert budget == (2000, 1.0)
    assert "The plateau is not established" in reason and "lora +2.00, goat +0.50" in reason


def test_a_largest_budget_whose_last_gain_is_within_the_tolerance_gets_no_caveat():
    # goat peaks early and dips: no budget is near both bests, and the largest has the smallest larger gap
    budget, reason = choose_regime(curve_of({"lora": (60.0, 65.5, 66.0), "goat": (70.0, 66.0, 66.5)}))
    assert budget == (2000, 1.0) and "their best budgets differ" in reason
    assert "not established" not in reason  # each method gained 0.5 points from the budget before


def test_a_budget_too_short_to_learn_is_a_flat_point_and_the_regime_is_still_decided(tmp_path):
    """Every rate at the smallest budget predicts the majority class: that point cannot bracket, but it is a
    measurement (nothing learned), so the curve counts it at its score and picks the regime among the rest."""

    def score(config):
        if config.max_train_samples == 500:
            return 41.0
        return 70.0 + config.max_train_samples / 1000 - abs(math.log2(config.learning_rate / 1e-3))

    ledger = Ledger(tmp_path / "runs.jsonl")
    for _ in range(20):
        ledger.requested.clear()
        curve = learning_curve(ledger, TASK)
        requested = list(ledger.requested.values())
        if not requested:
            break
        for config in requested:
            ledger.add(Record(config, OK, score(config), 1.0))
    assert all(curve.arms[m, (500, 1.0)].flat for m in CURVE_METHODS)
    assert curve.regime == (1000, 1.0) and curve.best("goat", (500, 1.0)) == 41.0
    assert "flat: every rate" in curve.arms["goat", (500, 1.0)].status()
