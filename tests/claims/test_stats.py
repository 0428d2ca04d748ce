"""The ledger's statistics against scipy computed independently, and its verdict rules on known intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from goat.claims import stats

VALUES = [71.2, 69.8, 70.5, 72.1, 70.0]
OTHER = [69.9, 69.1, 70.2, 70.4, 68.8]


def test_mean_ci_is_scipys_t_interval():
    interval = stats.mean_ci(VALUES)
    low, high = scipy_stats.t.interval(0.95, len(VALUES) - 1, loc=np.mean(VALUES), scale=scipy_stats.sem(VALUES))
    assert interval.mean == pytest.approx(np.mean(VALUES))
    assert (interval.low, interval.high) == (pytest.approx(low), pytest.approx(high))
    assert interval.n == 5


def test_mean_ci_by_hand_for_two_values():
    # n = 2: t_{0.975, 1} = 12.7062; sd of (1, 3) = sqrt(2); half width = 12.7062 * sqrt(2) / sqrt(2)
    interval = stats.mean_ci([1.0, 3.0])
    assert interval.mean == 2.0 and interval.high - 2.0 == pytest.approx(12.7062, abs=1e-4)


def test_single_value_has_no_interval():
    interval = stats.mean_ci([70.0])
    assert interval.mean == 70.0 and math.isnan(interval.low) and math.isnan(interval.high)
    assert stats.superiority(interval) == stats.INCONCLUSIVE


def test_paired_is_scipys_ttest_rel_and_interval_of_differences():
    result = stats.paired(VALUES, OTHER)
    differences = np.subtract(VALUES, OTHER)
    assert result.p_value == pytest.approx(scipy_stats.ttest_rel(VALUES, OTHER).pvalue)
    low, high = scipy_stats.t.interval(0.95, 4, loc=differences.mean(), scale=scipy_stats.sem(differences))
    assert (result.difference.low, result.difference.high) == (pytest.approx(low), pytest.approx(high))
    # the interval excludes 0 exactly when the two-sided test rejects at 5 %
    assert (result.difference.low > 0) == (result.p_value < 0.05)


def test_paired_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired([1.0, 2.0], [1.0])


def test_superiority_rule():
    assert stats.superiority(stats.Interval(1.0, 0.2, 1.8, 5)) == stats.HOLDS
    assert stats.superiority(stats.Interval(-1.0, -1.8, -0.2, 5)) == stats.FAILS  # significantly worse
    assert stats.superiority(stats.Interval(0.0, -0.3, 0.3, 5)) == stats.FAILS  # an advantage of 0.5 is ruled out
    assert stats.superiority(stats.Interval(0.5, -0.5, 1.5, 5)) == stats.INCONCLUSIVE


def test_non_inferiority_rule():
    assert stats.non_inferiority(stats.Interval(-0.1, -0.4, 0.2, 5)) == stats.HOLDS
    assert stats.non_inferiority(stats.Interval(-2.0, -3.0, -1.0, 5)) == stats.FAILS
    assert stats.non_inferiority(stats.Interval(-0.5, -1.5, 0.5, 5)) == stats.INCONCLUSIVE


def test_cost_ratio_interval_and_equivalence():
    a, b = [101.0, 99.0, 103.0, 100.0], [100.0, 100.0, 100.0, 100.0]
    ratio = stats.log_ratio_interval(a, b)
    logs = np.log(np.divide(a, b))
    low, high = scipy_stats.t.interval(0.95, 3, loc=logs.mean(), scale=scipy_stats.sem(logs))
    assert (ratio.low, ratio.high) == (pytest.approx(math.exp(low)), pytest.approx(math.exp(high)))
    assert stats.equivalence(ratio) == stats.HOLDS
    assert stats.equivalence(stats.Interval(1.5, 1.3, 1.7, 4)) == stats.FAILS
    assert stats.equivalence(stats.Interval(1.05, 0.95, 1.2, 4)) == stats.INCONCLUSIVE


def test_combine():
    assert stats.combine([stats.HOLDS, stats.HOLDS]) == stats.HOLDS
    assert stats.combine([stats.HOLDS, stats.INCONCLUSIVE]) == stats.INCONCLUSIVE
    assert stats.combine([stats.HOLDS, stats.FAILS, stats.INCONCLUSIVE]) == stats.FAILS
    assert stats.combine([]) == stats.INCONCLUSIVE
