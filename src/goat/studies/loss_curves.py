"""Figure 4: training-loss curves of PiSSA, the LoRA-MoE baselines, GOAT and Full FT MoE.

The paper plots Cars (CLIP ViT-B/32) and MetaMathQA (LLaMA-2-7B). Curves show the task loss
only: "the balance loss is excluded in the MoE baselines for a fair comparison with single LoRA
baselines" (the runs still train with it, per ``--aux-loss-coef``). Curves are smoothed in the
PNG by a moving average over 1/50 of the run; ``figure4_steps.csv`` holds the raw per-step values.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from goat.studies import common
from goat.studies.figures import Panel, line_panels

PAPER_METHODS = ("pissa", "molora", "hydralora", "adamole", "goat", "full_moe")
SMOKE_METHODS = ("pissa", "molora", "goat")
PAPER_TASKS = ("vision:cars", "math:gsm8k")


def moving_average(values: list[float]) -> list[float]:
    """Trailing mean over a window of 1/50 of the curve (at least 1 point)."""
    window = max(1, len(values) // 50)
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    return [
        float((cumulative[i + 1] - cumulative[max(0, i + 1 - window)]) / min(window, i + 1)) for i in range(len(values))
    ]


def step_rows(results: list[common.RunResult]) -> list[dict[str, Any]]:
    return [
        {"task": str(r.run.target), "seed": r.run.seed, "method": r.run.columns["method"], **s}
        for r in results
        for s in r.steps
    ]


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """One panel per task: mean task loss over seeds against step, one line per method."""
    panels = []
    for task in sorted({r["task"] for r in rows}):
        curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            if row["task"] == task:
                curves[row["method"]][row["step"]].append(row["task_loss"])
        series = {}
        for method, by_step in curves.items():
            steps = sorted(by_step)
            series[method] = (steps, moving_average([float(np.mean(by_step[s])) for s in steps]))
        panels.append(Panel(task.split(":")[-1], "step", "training loss (task loss, balance loss excluded)", series))
    return line_panels(panels, path, suptitle="Figure 4: training loss per method")


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--smoke`` swaps the paper defaults for the embedded default."""
    parser = argparse.ArgumentParser(prog="python -m goat.studies.loss_curves", description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, family="vision", tasks=PAPER_TASKS)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help=f"Methods (default {' '.join(PAPER_METHODS)}; smoke {' '.join(SMOKE_METHODS)}).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    common.configure_logging()
    try:
        settings = common.resolve(ns, "loss_curves", family="vision", tasks=PAPER_TASKS)
        methods = list(settings.pick(ns.methods, PAPER_METHODS, SMOKE_METHODS))
        configs = [(m, {"method": m, "logging_steps": 1}, {"method": m}) for m in methods]
        results = common.execute_recorded(settings, common.expand(settings, configs))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = settings.out
    steps = step_rows(results)
    common.write_csv(out / "figure4_steps.csv", steps)
    finals = []
    for result in results:
        last = result.steps[-1]["task_loss"] if result.steps else None
        finals.append({**result.row(), "final_task_loss": last})
    common.write_csv(out / "figure4.csv", finals)
    plot(steps, out / "figure4.png")
    text = common.markdown_table(
        ["task", "method", "seed", "final task loss", "metric"],
        [[f["task"], f["method"], f["seed"], f["final_task_loss"], f["value"]] for f in finals],
    )
    print(
        f"\n{common.banner(settings, 'Figure 4 loss curves', results)}\n\n{text}\n\nwrote {out / 'figure4.png'}, {out / 'figure4_steps.csv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
