"""Arms: one configuration over seeds, its learning-rate sweep, and summaries and paired comparisons of them.

Fair comparison (the paper's Table 6 sweeps learning rates): a method's *tuned* result is its
configuration at the learning rate whose mean over the sweep seeds is highest, among the swept
rates where no sweep seed diverged; it is then run on every seed. The *equal-lr* result is the
same configuration at the scale's common learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from goat.claims import stats
from goat.claims.ledger import Config, Ledger, with_seeds

SeedValues = dict[int, "float | None"]  # seed -> best-epoch metric x 100 (None: diverged / not run)


def run_arm(ledger: Ledger, config: Config, seeds: Sequence[int]) -> SeedValues:
    """Values of ``config`` on every seed (training the missing ones)."""
    return ledger.values(with_seeds(config, seeds))


def finished(values: SeedValues) -> list[float]:
    """The values of the runs that finished (diverged runs carry no number)."""
    return [v for v in values.values() if v is not None]


def summary(values: SeedValues) -> stats.Interval | None:
    """Mean ± 95 % t interval over the finished seeds (None if none finished)."""
    done = finished(values)
    return stats.mean_ci(done) if done else None


def compare(a: SeedValues, b: SeedValues) -> stats.Paired | None:
    """Paired comparison a − b over the seeds both finished (None with fewer than 2 such seeds)."""
    seeds = sorted(s for s in a if a[s] is not None and b.get(s) is not None)
    if len(seeds) < 2:
        return None
    return stats.paired([a[s] for s in seeds], [b[s] for s in seeds])


@dataclass
class TunedArm:
    """A configuration swept over learning rates: its curve, best rate, and tuned and equal-lr values."""

    name: str
    config: Config  # at seed 0 and the first swept lr; the lr and seed vary
    curve: dict[float, SeedValues]
    best_lr: float | None
    tuned: SeedValues
    equal: SeedValues

    @property
    def diverged_runs(self) -> int:
        """Runs of the sweep (tuned and equal-lr runs included) that carry no number."""
        return sum(v is None for values in self.curve.values() for v in values.values())


def best_lr(curve: dict[float, SeedValues], seeds: Sequence[int]) -> float | None:
    """The rate with the highest mean over ``seeds`` among those where all of them finished."""
    means = {}
    for lr, values in curve.items():
        chosen = [values.get(s) for s in seeds]
        if chosen and all(v is not None for v in chosen):
            means[lr] = math.fsum(chosen) / len(chosen)
    return max(means, key=means.get) if means else None


def tune(ledger: Ledger, name: str, config: Config, lrs: Sequence[float], seeds: Sequence[int], sweep_seeds: Sequence[int],
         common_lr: float | None, *, sweep_on_all_seeds: bool = False) -> TunedArm:  # fmt: skip
    """Sweep ``config`` over ``lrs`` (on ``sweep_seeds``, or every seed), then run its best and ``common_lr``
    (None: no equal-lr arm) on every seed."""
    curve = {lr: run_arm(ledger, replace(config, lr=lr), seeds if sweep_on_all_seeds else sweep_seeds) for lr in lrs}
    best = best_lr(curve, sweep_seeds)
    if best is not None:
        tuned = run_arm(ledger, replace(config, lr=best), seeds)
    else:  # every rate diverged somewhere (or, planning, nothing has run yet: plan the top-up at one rate)
        tuned = run_arm(ledger, replace(config, lr=lrs[-1]), seeds) if ledger.dry_run else {}
    equal = run_arm(ledger, replace(config, lr=common_lr), seeds) if common_lr is not None else {}
    for lr, values in ((best, tuned), (common_lr, equal)):
        if lr in curve:
            curve[lr].update(values)
    return TunedArm(name, config, curve, best, tuned, equal)


def grid_edge_note(arms: Sequence[TunedArm], lrs: Sequence[float]) -> str:
    """A plain warning when an arm's best rate is the smallest or largest swept: its optimum may lie outside the grid."""
    low, high = min(lrs), max(lrs)
    edge = [f"{a.name} ({a.best_lr:g})" for a in arms if a.best_lr in (low, high)]
    if not edge:
        return ""
    return (f"Caution: the best learning rate of {', '.join(edge)} is at the edge of the swept grid "
            f"({low:g}-{high:g}), so the sweep did not bracket an optimum; a tuned result here is the best of this grid, "
            "and a wider sweep could change it.")


def arm_rows(arms: Sequence[TunedArm], describe: Callable[[TunedArm], dict]) -> list[dict]:
    """CSV rows: one per arm and learning rate, with n, mean and interval."""
    rows = []
    for arm in arms:
        for lr, values in sorted(arm.curve.items()):
            interval = summary(values)
            rows.append({
                **describe(arm), "lr": lr, "best_lr": arm.best_lr == lr, "n": len(finished(values)),
                "diverged": sum(v is None for v in values.values()),
                "mean": interval.mean if interval else None, "ci_low": interval.low if interval else None,
                "ci_high": interval.high if interval else None,
                "values": " ".join(f"s{s}:{v:.2f}" if v is not None else f"s{s}:diverged" for s, v in sorted(values.items())),
            })  # fmt: skip
    return rows
