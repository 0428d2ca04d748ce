"""The ledger's statistics and its written verdict rules (no verdict is ever set by hand).

* :func:`mean_ci`: mean over seeds with a two-sided 95 % confidence interval from Student's t
  distribution (n − 1 degrees of freedom): ``mean ± t_{0.975, n−1} · sd / √n``.
* :func:`paired`: the per-seed differences ``a_i − b_i`` of two configurations trained on the same
  seeds (same training subset and data order), their mean with the t interval above, and the
  two-sided paired t-test p-value (``scipy.stats.ttest_rel``).
* :func:`minimum_detectable_effect`: the smallest true difference a two-sided paired t-test at
  α = 0.05 detects with 80 % power over n seeds at the measured spread sd:
  ``(t_{0.975, n−1} + t_{0.80, n−1}) · sd / √n``; :func:`seeds_to_resolve` inverts it for δ.
* :func:`verdict` judges a comparison "A beats B by the paper's δ" from the 95 % interval of A − B:

  *reproduced here*
      the interval lies above 0 (A is better here; when it also lies below δ, A is better by
      less than the paper reports, and the verdict says so).
  *contradicted here*
      the interval lies entirely below δ and not above 0: the paper's effect is ruled out at this
      scale. With no δ from the paper, contradicted means the interval lies below 0.
  *unresolved*
      anything else, stated with the minimum detectable effect and the seeds that would resolve δ.

  A comparison whose learning-rate optimum was not bracketed, or whose runs are not all done,
  gets no verdict (:data:`NOT_BRACKETED`, :data:`PENDING`); nor does one whose measurement a known
  fault biased (:data:`BIASED`).
* Costs (GOAT / MoLoRA step time and memory) use :func:`equivalence` of the ratio within ±10 %;
  :func:`equivalence_text` states an unresolved one with its MDE and the rounds that would decide it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
POWER = 0.80
COST_TOLERANCE = 1.10  # "about the same cost": within ±10 % (a ratio in [1/1.1, 1.1])
COST_TOLERANCE_TEXT = f"±{round((COST_TOLERANCE - 1) * 100)} %"
REPRODUCED = "reproduced here"
CONTRADICTED = "contradicted here"
UNRESOLVED = "unresolved"
NOT_BRACKETED = "no verdict (optimum not bracketed)"
PENDING = "pending (runs to do)"
BIASED = "no verdict (biased measurement)"
MAX_SEEDS_REPORTED = 10_000


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with its two-sided t confidence interval and sample sd (``nan`` when n < 2)."""

    mean: float
    low: float
    high: float
    n: int
    sd: float = math.nan

    def text(self, digits: int = 2, *, count: bool = False) -> str:
        """``mean ± half-width``, or the mean and ``(n=1)`` when no interval exists; ``count`` adds
        ``(n=N)`` in every case."""
        if math.isnan(self.low):
            return f"{self.mean:.{digits}f} (n={self.n})"
        half_width = f"{self.mean:.{digits}f} ± {(self.high - self.low) / 2:.{digits}f}"
        return f"{half_width} (n={self.n})" if count else half_width


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
    return Interval(mean, mean - half, mean + half, n, sd)


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


def minimum_detectable_effect(sd: float, n: int, power: float = POWER, confidence: float = CONFIDENCE) -> float:
    """Smallest true mean difference a two-sided paired t-test over ``n`` seeds detects with ``power``.

    ``(t_{1−α/2, n−1} + t_{power, n−1}) · sd / √n`` with α = 1 − ``confidence`` (the usual normal-theory
    approximation with t quantiles); ``nan`` when ``n < 2`` or sd is unknown.
    """
    if n < 2 or math.isnan(sd):
        return math.nan
    df = n - 1
    return (stats.t.ppf(0.5 + confidence / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n)


def seeds_to_resolve(sd: float, delta: float, power: float = POWER) -> int | None:
    """Fewest seeds whose minimum detectable effect at spread ``sd`` is at most ``delta`` (None: unknown / > 10,000)."""
    if math.isnan(sd) or delta is None or delta <= 0:
        return None
    if sd == 0:
        return 2
    # the normal-quantile answer is a lower bound (t quantiles are larger): start the search there
    normal = ((stats.norm.ppf(0.5 + CONFIDENCE / 2) + stats.norm.ppf(power)) * sd / delta) ** 2
    if normal > MAX_SEEDS_REPORTED:
        return None
    for n in range(max(2, math.floor(normal)), MAX_SEEDS_REPORTED + 1):
        if minimum_detectable_effect(sd, n, power) <= delta:
            return n
    return None


def seeds_to_decide(sd: float, mean: float, delta: float) -> int | None:
    """Fewest seeds whose 95 % half-width ``t_{0.975, n−1} · sd / √n`` is below ``max(mean, δ − mean)``: the
    interval would then exclude 0 (reproduced) or δ (contradicted) *if the mean difference stayed where it
    is*. A description of the data, not a stopping rule (that would look at the mean); None: unknown, or
    more than the reported maximum."""
    if math.isnan(mean):
        return None
    return samples_for_half_width(sd, max(mean, delta - mean))


def samples_for_half_width(sd: float, margin: float) -> int | None:
    """Fewest samples whose 95 % half-width ``t_{0.975, n−1} · sd / √n`` is below ``margin`` (None: unknown,
    no margin, or more than the reported maximum)."""
    if math.isnan(sd) or math.isnan(margin) or margin <= 0:
        return None
    if sd == 0:
        return 2
    for n in range(2, MAX_SEEDS_REPORTED + 1):
        if stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n) < margin:
            return n
    return None


def verdict(difference: Interval, delta: float | None) -> str:
    """Verdict on "A beats B by the paper's δ" from the interval of A − B (module docstring)."""
    if math.isnan(difference.low):
        return UNRESOLVED
    if difference.low > 0:
        return REPRODUCED
    if delta is not None and difference.high < delta:
        return CONTRADICTED
    if delta is None and difference.high < 0:
        return CONTRADICTED
    return UNRESOLVED


def verdict_text(difference: Interval, delta: float | None) -> str:
    """The verdict with what qualifies it: below δ, or the MDE and the seeds that would resolve δ."""
    label = verdict(difference, delta)
    mde = minimum_detectable_effect(difference.sd, difference.n)
    if label == REPRODUCED and delta is not None and difference.high < delta:
        return f"{label}, smaller than the paper's δ = {delta:g} (an effect of δ is ruled out)"
    if label != UNRESOLVED:
        return label
    needed = seeds_to_resolve(difference.sd, delta) if delta is not None else None
    parts = [f"MDE {mde:.2f}" if not math.isnan(mde) else "MDE unknown"]
    if delta is not None:
        parts.append(
            f"δ = {delta:g} needs ≈{needed} seeds"
            if needed
            else f"δ = {delta:g} needs more than {MAX_SEEDS_REPORTED} seeds"
        )
        if needed and needed <= difference.n:
            parts[-1] += f" (these {difference.n} have that power, yet the interval holds both 0 and δ)"
        deciding = seeds_to_decide(difference.sd, difference.mean, delta)
        if deciding and deciding > difference.n:
            parts.append(f"at the observed {difference.mean:+.2f}, ≈{deciding} seeds would exclude 0 or δ")
    return f"{label} ({'; '.join(parts)})"


def log_ratio_interval(a: Sequence[float], b: Sequence[float]) -> Interval:
    """Interval of the ratio a / b over paired rounds: t interval of log(a_i / b_i), mapped back by exp."""
    log_interval = mean_ci([math.log(x / y) for x, y in zip(a, b)])
    return Interval(
        *(math.exp(v) for v in (log_interval.mean, log_interval.low, log_interval.high)),
        log_interval.n,
        log_interval.sd,
    )


def equivalence(ratio: Interval) -> str:
    """Verdict on "A costs about what B costs" from the interval of the ratio A / B: inside ±10 % reproduces."""
    low, high = 1 / COST_TOLERANCE, COST_TOLERANCE
    if low <= ratio.low and ratio.high <= high:
        return REPRODUCED
    if ratio.high < low or ratio.low > high:
        return CONTRADICTED
    return UNRESOLVED


def equivalence_text(ratio: Interval) -> str:
    """:func:`equivalence` with what qualifies an unresolved verdict, on the log scale the interval was built on:
    the minimum detectable departure from a ratio of 1 (80 % power, :func:`minimum_detectable_effect` of the
    log ratios) and the rounds that would put the interval wholly inside or wholly outside ±10 % if the ratio
    and its spread stayed where they are (:func:`samples_for_half_width`; a description, not a stopping rule)."""
    label = equivalence(ratio)
    if label != UNRESOLVED:
        return label
    mde = minimum_detectable_effect(ratio.sd, ratio.n)
    parts = [f"MDE ±{(math.exp(mde) - 1) * 100:.0f} %" if not math.isnan(mde) else "MDE unknown"]
    deciding = samples_for_half_width(ratio.sd, abs(math.log(COST_TOLERANCE) - abs(math.log(ratio.mean))))
    parts.append(
        f"at the observed ×{ratio.mean:.3f}, ≈{deciding} rounds would decide {COST_TOLERANCE_TEXT}"
        if deciding
        else f"at the observed ×{ratio.mean:.3f}, more than {MAX_SEEDS_REPORTED} rounds would be needed to decide"
    )
    return f"{label} ({'; '.join(parts)})"


def combine(verdicts: Sequence[str]) -> str:
    """One verdict for a claim of several rows: pending or unbracketed rows first, then contradicted, then all reproduced."""
    if not verdicts:
        return PENDING
    labels = [v.split(" (")[0].split(",")[0] for v in verdicts]
    if any(v == PENDING.split(" (")[0] for v in labels):
        return PENDING
    if any(v == CONTRADICTED for v in labels):
        return CONTRADICTED
    if all(v == REPRODUCED for v in labels):
        return REPRODUCED
    no_verdict = [v for v, label in zip(verdicts, labels) if label == NOT_BRACKETED.split(" (")[0]]
    if no_verdict:
        return no_verdict[0].split(",")[0]  # why there is none: an optimum not bracketed, or a biased measurement
    return UNRESOLVED
