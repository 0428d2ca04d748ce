"""The ledger's statistics and its written verdict rules (no verdict is ever set by hand).

* :func:`mean_ci`: mean over seeds with a two-sided 95 % confidence interval from Student's t
  distribution (n − 1 degrees of freedom): ``mean ± t_{0.975, n−1} · sd / √n``.
* :func:`paired`: the per-seed differences ``a_i − b_i`` of two configurations trained on the same
  seeds (same training subset and data order), their mean with the t interval above, and the
  two-sided paired t-test p-value (``scipy.stats.ttest_rel``).
* Verdicts, from the interval of the difference (claimed-better minus other), in accuracy points:

  ``superiority`` ("A beats B")
      *holds here* if the interval lies above 0; *does not hold at this scale* if it lies below
      :data:`MATERIAL` (the data rule out an advantage of that size or more, which includes A being
      significantly worse); *inconclusive* otherwise.
  ``non_inferiority`` ("A costs nothing against B")
      *holds here* if the interval lies above −:data:`MATERIAL`; *does not hold at this scale* if it
      lies below −:data:`MATERIAL`; *inconclusive* otherwise.
  ``equivalence`` of two costs (ratio r, e.g. GOAT / MoLoRA step time, intervals on log r)
      *holds here* if the interval of r lies inside [1/:data:`COST_TOLERANCE`, :data:`COST_TOLERANCE`];
      *does not hold at this scale* if it lies entirely outside; *inconclusive* otherwise.

  A claim with several rows (e.g. GOAT against six baselines) *holds* if every row holds, *does
  not hold* if any row does not hold, and is *inconclusive* otherwise (:func:`combine`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
MATERIAL = 0.5  # accuracy points: a difference below this is immaterial at this scale
COST_TOLERANCE = 1.10  # "about the same cost": within ±10 % (a ratio in [1/1.1, 1.1])
HOLDS = "holds here"
FAILS = "does not hold at this scale"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with its two-sided t confidence interval (``nan`` bounds when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 2) -> str:
        """``mean ± half-width`` (or just the mean when no interval exists)."""
        if math.isnan(self.low):
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} ± {(self.high - self.low) / 2:.{digits}f}"


@dataclass(frozen=True)
class Paired:
    """``a − b`` over paired seeds: the interval of the mean difference and the paired t-test p-value."""

    difference: Interval
    p_value: float


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and t-distribution confidence interval of ``values`` (n − 1 degrees of freedom)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Paired:
    """Paired comparison of ``a`` and ``b`` (same seeds, same order): interval of a − b and the t-test p-value."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs equal lengths, got {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b)]
    interval = mean_ci(differences, confidence)
    if len(a) < 2:
        return Paired(interval, math.nan)
    if all(d == differences[0] for d in differences):  # zero variance: the t statistic is undefined
        return Paired(interval, 1.0 if differences[0] == 0 else 0.0)
    return Paired(interval, float(stats.ttest_rel(a, b).pvalue))


def superiority(difference: Interval) -> str:
    """Verdict on "A beats B" from the interval of A − B (module docstring)."""
    if difference.low > 0:
        return HOLDS
    if difference.high < MATERIAL:
        return FAILS
    return INCONCLUSIVE


def non_inferiority(difference: Interval) -> str:
    """Verdict on "A costs nothing against B" from the interval of A − B (module docstring)."""
    if difference.low > -MATERIAL:
        return HOLDS
    if difference.high < -MATERIAL:
        return FAILS
    return INCONCLUSIVE


def log_ratio_interval(a: Sequence[float], b: Sequence[float]) -> Interval:
    """Interval of the ratio a / b over paired rounds: t interval of log(a_i / b_i), mapped back by exp."""
    log_interval = mean_ci([math.log(x / y) for x, y in zip(a, b)])
    return Interval(*(math.exp(v) for v in (log_interval.mean, log_interval.low, log_interval.high)), log_interval.n)


def equivalence(ratio: Interval) -> str:
    """Verdict on "A costs about what B costs" from the interval of the ratio A / B (module docstring)."""
    low, high = 1 / COST_TOLERANCE, COST_TOLERANCE
    if low <= ratio.low and ratio.high <= high:
        return HOLDS
    if ratio.high < low or ratio.low > high:
        return FAILS
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """One verdict for a claim of several rows: all hold -> holds; any fails -> fails; else inconclusive."""
    if not verdicts:
        return INCONCLUSIVE
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    if any(v == FAILS for v in verdicts):
        return FAILS
    return INCONCLUSIVE
