"""The ledger's sections: the learning curve (0) and the paper's claims, each a small controlled experiment.

Every section function asks the :class:`~goat.claims.ledger.Ledger` for the runs it needs (the
ledger trains them between rounds), then returns a :class:`~goat.claims.section.Section`: the
paper's statement with its effect δ, what ran, the table of means ± 95 % intervals, the paired
comparisons and the verdict from the written rules of :mod:`goat.claims.stats`. Runs are shared
between sections (GOAT at its tuned learning rate appears in claims 1-3, 5, 6 and 8).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goat.claims import plots
from goat.claims.curve import CURVE_METHODS, Curve, learning_curve
from goat.claims.scale import Scale, TaskScale
from goat.claims.section import Section

ROOT = Path(__file__).resolve().parents[3]  # the repository (benchmarks/ is a script folder, not a package)


def curves(ledger: Any, scale: Scale) -> dict[str, Curve]:
    """Each task's learning curve (and so its regime), smoke scale with one extension at most."""
    extensions = 1 if scale.name == "smoke" else 4
    return {task.name: learning_curve(ledger, task, extensions) for task in scale.tasks}


def curve_table(curve: Curve) -> str:
    task = curve.task
    header = "| budget (tweets × epochs, steps) | " + " | ".join(f"{m}: tuned accuracy (best lr, search)" for m in CURVE_METHODS) + " |"
    lines = [header, "|---|" + "---|" * len(CURVE_METHODS)]
    for budget in sorted(task.budgets, key=task.steps):
        cells = []
        for method in CURVE_METHODS:
            arm = curve.arms[(method, budget)]
            value = curve.best(method, budget)
            cells.append(f"{value:.2f} ({arm.best_lr:g}, {arm.status()})" if value is not None else arm.status())
        mark = " **← regime**" if budget == curve.regime else ""
        lines.append(f"| {budget[0]} × {budget[1]:g} ({task.steps(budget)}){mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section_0(ledger: Any, scale: Scale, out: Path, *, measure: bool = True) -> Section:
    """The learning curve of each task and the regime its rule picks (issue 18, item 1)."""
    found = curves(ledger, scale)
    tables, rows, configs, figures = [], [], [], []
    for name, curve in found.items():
        task = curve.task
        tables.append(f"**{task.name}** ({task.description}; {task.max_eval_samples} held-out tweets; curve seeds "
                      f"{', '.join(map(str, task.curve_seeds))}; tolerance {task.plateau_tolerance:g} points). Regime: "
                      f"{curve.reason}.\n\n{curve_table(curve)}")  # fmt: skip
        for (method, budget), arm in curve.arms.items():
            for lr, values in sorted(arm.curve.items()):
                for seed, value in sorted(values.items()):
                    rows.append({"kind": "curve", "task": task.name, "method": method, "max_train_samples": budget[0],
                                 "num_train_epochs": budget[1], "learning_rate": lr, "seed": seed, "value": value,
                                 "best": lr == arm.best_lr, "bracketed": arm.bracketed})  # fmt: skip
            configs += [c for c in _configs(arm)]
        if measure:
            figures += [f for f in (plots.learning_curve(curve, out / f"curve_{task.name}.png"),
                                    plots.curve_lr(curve, out / f"curve_{task.name}_lr.png")) if f]  # fmt: skip
    decided = all(c.regime is not None for c in found.values())
    return Section(
        0, "The regime: tuned LoRA and GOAT against the amount of training",
        "No claim of the paper; the question a small-scale check must answer first: are the methods trained, and tuned, "
        "where they are compared?",
        "For each task and budget (training tweets × epochs, batch 16), LoRA and GOAT each get the bracketing learning-rate "
        "search (x2 log grid, extended until the best rate has a worse neighbour on both sides) on the curve seeds. Rule: "
        "the regime is the smallest budget at which both tuned accuracies lie within the task's tolerance of their own best "
        "over all budgets.",
        "\n\n".join(tables), [], "regime chosen" if decided else "pending (runs to do)",
        "the smallest budget within the tolerance of both methods' plateaus", configs, rows, figures,
        caption="tuned accuracy in % (mean over the curve seeds at the best rate of the bracketing search)",
    )  # fmt: skip


def _configs(arm: Any) -> list:
    from dataclasses import replace

    return [replace(arm.config, learning_rate=lr, seed=s) for lr, values in arm.curve.items() for s in values]


# ------------------------------------------------------------------------------- claim 7 (cost)
STEP_METHODS = ("lora", "molora", "goat")


def read_rounds(path: Path) -> list[dict[str, Any]]:
    """Claim 7's finished rounds (its own record file, so a resumed ledger does not measure them again)."""
    if not path.is_file():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def step_children_left(scale: Scale, out: Path) -> int:
    """Claim 7's measurements (one method in one round) not yet in its record file."""
    done = len(read_rounds(out / "claim7_rounds.csv")) // len(STEP_METHODS)
    return len(STEP_METHODS) * max(0, scale.step_rounds - done)


SECTIONS: dict[int, Callable[..., Section]] = {0: section_0}


def task_named(scale: Scale, name: str) -> TaskScale:
    return next(t for t in scale.tasks if t.name == name)
