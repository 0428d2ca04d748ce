"""The learning curve that chooses the ledger's regime (issue 18, item 1).

Before any claim, tuned LoRA and tuned GOAT are measured against the amount of training: for each
budget (training examples × epochs) of the task, each method's learning rate is searched by the
bracketing rule of :mod:`goat.claims.arms` on the curve seeds. The rule that picks the regime:

    the smallest budget (fewest optimizer steps) at which the tuned accuracy of LoRA and of GOAT
    each lies within ``plateau_tolerance`` points of that method's best over all budgets measured;
    if no budget qualifies (the two methods peak at different budgets), the budget whose larger
    gap is smallest.

Only bracketed points count, and flat ones (every rate scored the same: nothing was learned to tune,
see :mod:`goat.claims.arms`) at their one score; until every budget is one or the other the regime is
undecided and no claim of that task runs. The curve is also the answer to "is anything trained here": its smallest budget
is the old ledger's regime.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from goat.claims.arms import TunedArm, summary, tune
from goat.claims.ledger import Config, Ledger
from goat.claims.scale import Budget, TaskScale

CURVE_METHODS = ("lora", "goat")


def base_config(task: TaskScale, method: str, budget: Budget) -> Config:
    """A run of ``task`` with ``method`` at ``budget`` (learning rate and seed are set by the search)."""
    samples, epochs = budget
    return Config(
        task.family,
        task.task,
        method,
        learning_rate=task.start_learning_rates[0],
        seed=task.curve_seeds[0],
        max_train_samples=samples,
        num_train_epochs=epochs,
        max_eval_samples=task.max_eval_samples,
        bf16=task.bf16,
    )


@dataclass
class Curve:
    """The tuned arms per (method, budget) and the regime the rule picked (None until decided)."""

    task: TaskScale
    arms: dict[tuple[str, Budget], TunedArm]
    regime: Budget | None
    reason: str

    def best(self, method: str, budget: Budget) -> float | None:
        """The tuned accuracy (mean over the curve seeds at the best rate) of ``method`` at ``budget``."""
        arm = self.arms[(method, budget)]
        if arm.best_learning_rate is None:
            return None
        interval = summary({s: arm.curve[arm.best_learning_rate].get(s) for s in self.task.curve_seeds})
        return interval.mean if interval else None


def learning_curve(ledger: Ledger, task: TaskScale, max_extensions: int = 4) -> Curve:
    """Tune both methods at every budget (requesting what is missing) and apply the regime rule."""
    arms = {
        (method, budget): tune(
            ledger,
            f"{method} @ {budget[0]}×{budget[1]:g}",
            base_config(task, method, budget),
            task.start_learning_rates,
            task.curve_seeds,
            max_extensions=max_extensions,
        )
        for method in CURVE_METHODS
        for budget in task.budgets
    }
    curve = Curve(task, arms, None, "")
    undecided = [
        name for name, arm in ((a.name, a) for a in arms.values()) if not (arm.complete and (arm.bracketed or arm.flat))
    ]
    if undecided:
        curve.reason = f"undecided: {len(undecided)} of {len(arms)} curve points not yet bracketed ({', '.join(undecided[:4])}{', ...' if len(undecided) > 4 else ''})"
        return curve
    curve.regime, curve.reason = choose_regime(curve)
    return curve


def choose_regime(curve: Curve) -> tuple[Budget, str]:
    """The smallest budget where both methods are within the tolerance of their own best (module docstring)."""
    task = curve.task
    budgets = sorted(task.budgets, key=task.steps)
    best = {m: max(curve.best(m, b) for b in budgets) for m in CURVE_METHODS}
    gaps = {b: {m: best[m] - curve.best(m, b) for m in CURVE_METHODS} for b in budgets}
    within = [b for b in budgets if all(gap <= task.plateau_tolerance for gap in gaps[b].values())]
    budget = within[0] if within else min(budgets, key=lambda b: (max(gaps[b].values()), task.steps(b)))
    text = ", ".join(
        f"{m} {curve.best(m, budget):.2f} ({gaps[budget][m]:.2f} below its best {best[m]:.2f})" for m in CURVE_METHODS
    )
    why = (
        f"the smallest budget within {task.plateau_tolerance:g} points of both plateaus"
        if within
        else f"no budget is within {task.plateau_tolerance:g} points of both plateaus (their best budgets differ); this one has "
        "the smallest larger gap"
    )
    return (
        budget,
        f"{budget[0]} {task.unit} × {budget[1]:g} epoch(s) ({task.steps(budget)} steps): {text}; {why}{_still_rising(curve, budgets, budget)}",
    )


def _still_rising(curve: Curve, budgets: list[Budget], budget: Budget) -> str:
    """A caveat when the regime is the largest budget and a method gained more than the tolerance to reach
    it: the best over the budgets measured is then no evidence of a plateau."""
    if budget != budgets[-1] or len(budgets) < 2:
        return ""
    before = budgets[-2]
    gains = {m: curve.best(m, budget) - curve.best(m, before) for m in CURVE_METHODS}
    if max(gains.values()) <= curve.task.plateau_tolerance:
        return ""
    rises = ", ".join(f"{m} {gain:+.2f}" for m, gain in gains.items())
    return (
        f". **The plateau is not established**: this is the largest budget measured, and from {before[0]} × {before[1]:g} "
        f"({curve.task.steps(before)} steps) to it the tuned accuracy still rose ({rises} points), more than the tolerance. "
        "The claims compare the methods after the most training this ledger affords, not at convergence"
    )


def regime_config(task: TaskScale, curve: Curve, method: str, **fields: object) -> Config:
    """A claim's configuration in the task's chosen regime (``learning_rate`` and ``seed`` set later)."""
    assert curve.regime is not None
    return replace(base_config(task, method, curve.regime), **fields)
