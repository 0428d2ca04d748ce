"""Figure 2: SVD-initialised LoRA at several scalings s and ranks r — training loss and the
equivalent-gradient norm of Lemma 2.2 per step.

Each configuration ``r:s`` is PiSSA (``--method pissa --r r --scaling s``): ``B A`` holds the top
r singular triplets divided by s, so the equivalent weight ``W + s B A`` is the same for every s
(eq. 7) while the equivalent gradient ``s (U_r U_rᵀ g + g V_r V_rᵀ)`` grows with s (eq. 8). The
left panels of the paper vary s at a fixed rank, the right ones r (§2.2 quotes r = 1 vs 64 at
s = 2, and r = 1 at s = 16). The norm is computed from the unclipped adapter gradients
(:mod:`goat.studies.steps`).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from goat.report.paper import FIGURE_2_TEXT
from goat.studies import common
from goat.studies.figures import Panel, line_panels

PAPER_CONFIGS = ("8:2", "8:4", "8:8", "8:16", "1:2", "64:2", "1:16")
SMOKE_CONFIGS = ("8:2", "8:16", "1:2")


def parse_config(text: str) -> tuple[int, float]:
    """``r:s`` -> (r, scaling)."""
    r, sep, scaling = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(r), float(scaling)
    except ValueError:
        raise ValueError(f"--configs entry {text!r}: write r:scaling, e.g. 8:2.") from None


def label(r: int, scaling: float) -> str:
    return f"r={r},s={scaling:g}"


def configurations(configs: list[str]) -> list[tuple[str, dict, dict]]:
    out = []
    for text in configs:
        r, scaling = parse_config(text)
        overrides = {"method": "pissa", "r": r, "scaling": scaling, "logging_steps": 1}
        out.append((label(r, scaling), overrides, {"config": label(r, scaling), "r": r, "scaling": scaling}))
    return out


def step_rows(results: list[common.RunResult]) -> list[dict[str, Any]]:
    """One row per (run, step): loss, task loss and the equivalent-gradient norm."""
    return [
        {"task": str(r.run.target), "seed": r.run.seed, **r.run.columns, **step} for r in results for step in r.steps
    ]


def mean_curves(rows: list[dict[str, Any]], task: str, key: str) -> dict[str, tuple[list[int], list[float]]]:
    """Per configuration: ``key`` against step, averaged over seeds."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["task"] == task and row.get(key) is not None:
            values[row["config"]][row["step"]].append(row[key])
    return {c: (sorted(v), [sum(v[s]) / len(v[s]) for s in sorted(v)]) for c, v in values.items()}


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Per task: task loss and equivalent-gradient norm against step, one line per r:s."""
    panels = []
    for task in sorted({r["task"] for r in rows}):
        name = task.split(":")[-1]
        panels.append(Panel(f"{name}: training loss", "step", "task loss", mean_curves(rows, task, "task_loss")))
        panels.append(
            Panel(
                f"{name}: equivalent gradient (Lemma 2.2)",
                "step",
                "||g̃||_F",
                mean_curves(rows, task, "equivalent_grad_norm"),
                logy=True,
            )
        )
    return line_panels(panels, path, suptitle="Figure 2: SVD-initialised LoRA vs scaling s and rank r")


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--smoke`` swaps the paper defaults for the embedded default."""
    parser = argparse.ArgumentParser(prog="python -m goat.studies.scaling_rank", description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, family="vision", tasks=["eurosat"])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=None,
        help=f"r:scaling pairs (default {' '.join(PAPER_CONFIGS)}; smoke {' '.join(SMOKE_CONFIGS)}).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    common.configure_logging()
    try:
        settings = common.resolve(ns, "scaling_rank", family="vision", tasks=["eurosat"])
        configs = configurations(list(settings.pick(ns.configs, PAPER_CONFIGS, SMOKE_CONFIGS)))
        results = common.execute_recorded(settings, common.expand(settings, configs), equivalent_gradient=True)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = settings.out
    steps = step_rows(results)
    common.write_csv(out / "figure2_steps.csv", steps)
    finals = common.mean_over(results, lambda r: r.run.columns["config"])
    summary = [{"config": c, "value": round(v, 4), "paper_text": FIGURE_2_TEXT.get(c)} for c, v in finals.items()]
    common.write_csv(out / "figure2.csv", summary)
    plot(steps, out / "figure2.png")
    text = common.markdown_table(
        ["r:s", "metric (mean over tasks, seeds)", "paper §2.2"],
        [[r["config"], r["value"], r["paper_text"]] for r in summary],
    )
    print(
        f"\n{common.banner(settings, 'Figure 2 scaling and rank', results)}\n\n{text}\n\nwrote {out / 'figure2.png'}, {out / 'figure2_steps.csv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
