"""Arms: one configuration over seeds, its bracketing learning-rate search, summaries and paired comparisons.

Tuning that brackets (issue 18): a method's learning-rate grid is log-spaced by a factor of 2. It
starts from the scale's grid and extends by itself toward whichever edge holds the best mean over
the sweep seeds, one rate at a time, until that best rate has a worse (or diverged) neighbour on
both sides. A rate where any sweep seed diverged counts as worse than every finished rate. The
search stops unbracketed after ``max_extensions`` extensions, and a comparison that involves an
unbracketed arm gets no verdict. The tuned arm then runs its best rate on the comparison's seeds.

A search whose every rate scores exactly the same (a budget too short to learn anything, where each
rate predicts the majority class) has no better edge to extend toward: it extends both edges once,
and if every rate still ties it is *flat*: there is nothing to tune, so it stops there. A flat
point counts on the learning curve at that score; a comparison gets no verdict from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from goat.claims import stats
from goat.claims.ledger import Config, Ledger, with_seeds

SeedValues = dict[int, "float | None"]  # seed -> best-epoch metric x 100 (None: diverged); missing seed: not run yet
GRID_FACTOR = 2.0


def run_arm(ledger: Ledger, config: Config, seeds: Sequence[int]) -> SeedValues:
    """Values of ``config`` on the seeds that have run (the others are requested)."""
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


def neighbour(learning_rate: float, direction: int) -> float:
    """The next rate of the ×2 log grid above (+1) or below (−1) ``learning_rate``, rounded to 4 significant digits."""
    return float(f"{learning_rate * GRID_FACTOR**direction:.4g}")


@dataclass
class TunedArm:
    """A configuration swept over learning rates: its curve, best rate, whether bracketed, and its tuned values."""

    name: str
    config: Config  # the swept configuration (its learning_rate and seed vary)
    curve: dict[float, SeedValues]
    best_learning_rate: float | None
    bracketed: bool
    complete: bool  # every requested sweep run has finished
    tuned: SeedValues = field(default_factory=dict)
    flat: bool = False  # every rate of the search scored the same (module docstring); not bracketed

    @property
    def diverged_runs(self) -> int:
        """Runs of the sweep and of the tuned rate that carry no number."""
        return sum(v is None for values in self.curve.values() for v in values.values())

    def status(self) -> str:
        """``bracketed at X``, ``not bracketed (best X at the edge of ...)`` or ``sweep running``."""
        if not self.complete:
            return "sweep running"
        if self.best_learning_rate is None:
            return "every rate diverged"
        if self.flat:
            value = summary(self.curve[self.best_learning_rate])
            return (
                f"flat: every rate of {min(self.curve):g}-{max(self.curve):g} scores {value.mean:.2f}, nothing to tune"
            )
        if self.bracketed:
            return f"bracketed at {self.best_learning_rate:g}"
        return (
            f"not bracketed (best {self.best_learning_rate:g} at the edge of {min(self.curve):g}-{max(self.curve):g})"
        )

    def at(self, ledger: Ledger, seeds: Sequence[int]) -> SeedValues:
        """The tuned rate on ``seeds`` (requested as needed); empty until the sweep is decided."""
        if self.best_learning_rate is None or not self.complete:
            return {}
        values = run_arm(ledger, replace(self.config, learning_rate=self.best_learning_rate), seeds)
        self.tuned.update(values)
        self.curve.setdefault(self.best_learning_rate, {}).update(values)
        return dict(self.tuned)


def sweep_means(curve: dict[float, SeedValues], seeds: Sequence[int]) -> dict[float, float]:
    """Mean over ``seeds`` per rate; −inf where a seed diverged (worse than any finished rate)."""
    means = {}
    for lr, values in curve.items():
        chosen = [values.get(s) for s in seeds]
        means[lr] = -math.inf if any(v is None for v in chosen) else math.fsum(chosen) / len(chosen)
    return means


def tune(
    ledger: Ledger,
    name: str,
    config: Config,
    start: Sequence[float],
    sweep_seeds: Sequence[int],
    *,
    max_extensions: int = 4,
) -> TunedArm:
    """Bracketing search (module docstring): request what the next step needs; decide once it has run."""
    grid = sorted(set(start))
    curve: dict[float, SeedValues] = {}
    widened = False  # a tied grid was extended at both edges once
    for _ in range(max_extensions + 1):
        for lr in grid:
            if lr not in curve:
                curve[lr] = run_arm(ledger, replace(config, learning_rate=lr), sweep_seeds)
        if any(len(curve[lr]) < len(sweep_seeds) for lr in grid):
            return TunedArm(name, config, curve, None, False, False)
        means = sweep_means(curve, sweep_seeds)
        if len(grid) > 1 and len({means[lr] for lr in grid}) == 1 and means[grid[0]] > -math.inf:
            if widened:
                return TunedArm(name, config, curve, grid[len(grid) // 2], False, True, flat=True)
            grid, widened = (
                [neighbour(grid[0], -1), *grid, neighbour(grid[-1], +1)],
                True,
            )  # no edge is better: try both
            continue
        best = max(grid, key=lambda lr: means[lr])
        if means[best] == -math.inf:  # every rate diverged: look lower
            grid.insert(0, neighbour(grid[0], -1))
            continue
        index = grid.index(best)
        if 0 < index < len(grid) - 1:
            return TunedArm(name, config, curve, best, True, True)
        grid = [neighbour(grid[0], -1), *grid] if index == 0 else [*grid, neighbour(grid[-1], +1)]
    means = sweep_means(curve, sweep_seeds)
    finite = [lr for lr in curve if means[lr] > -math.inf]
    best = max(finite, key=lambda lr: means[lr]) if finite else None
    return TunedArm(name, config, curve, best, False, True)


def grow_seeds(
    a: SeedValues, b: SeedValues, seeds: Sequence[int], delta: float | None, minimum: int, maximum: int
) -> list[int]:
    """Seeds a primary comparison runs: the first ``minimum`` (the floor); once they have run, as many as δ needs
    at their spread (80 % power, :func:`stats.seeds_to_resolve`) if that is at most ``maximum``, else the floor alone
    (δ is out of reach here, and the row says how many seeds it would need).

    The spread is read from the floor's seeds only, so the answer is fixed once they have run, and the rule never
    looks at the mean difference: it cannot bias the test toward either verdict (an internal pilot).
    """
    floor = list(seeds[:minimum])
    if delta is None or any(s not in a or s not in b for s in floor):
        return floor
    result = compare({s: a[s] for s in floor}, {s: b[s] for s in floor})
    needed = stats.seeds_to_resolve(result.difference.sd, delta) if result is not None else None
    if needed is None or needed > maximum:
        return floor
    return list(seeds[: max(minimum, min(needed, len(seeds)))])


def arm_rows(arms: Sequence[TunedArm], describe: Callable[[TunedArm], dict]) -> list[dict]:
    """CSV rows: one per arm and learning rate, with n, mean and interval."""
    rows = []
    for arm in arms:
        for lr, values in sorted(arm.curve.items()):
            interval = summary(values)
            rows.append(
                {
                    **describe(arm),
                    "learning_rate": lr,
                    "best": arm.best_learning_rate == lr,
                    "bracketed": arm.bracketed,
                    "n": len(finished(values)),
                    "diverged": sum(v is None for v in values.values()),
                    "mean": interval.mean if interval else None,
                    "ci_low": interval.low if interval else None,
                    "ci_high": interval.high if interval else None,
                    "values": " ".join(
                        f"s{s}:{v:.2f}" if v is not None else f"s{s}:diverged" for s, v in sorted(values.items())
                    ),
                }
            )
    return rows
