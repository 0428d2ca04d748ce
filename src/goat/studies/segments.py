"""Figure 1: a single LoRA initialised from each SVD segment in turn, the rest of W frozen.

Segment i is the block of singular triplets ``[i r, (i+1) r)``, i = 0..l with ``l = h/r - 1``
(§2.1, eq. 2-3): ``B = U_i Σ_i^½``, ``A = Σ_i^½ V_iᵀ`` (divided by sqrt(s) so that ``s B A`` is
the segment) and ``W <- W - U_i Σ_i V_iᵀ`` — ``--method pissa --segment i``; i = 0 is PiSSA,
i = l MiLoRA's block. α = 2r (Table 10's ratio), so s = α/r = 2 at every rank. Per dataset and
rank the metric is min-max normalised over the segments, as in the figure. With ``--segments``
unset all l + 1 segments run (h is read from the segment-0 run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from goat.studies import common
from goat.studies.figures import Panel, line_panels
from goat.train.settings import flag_names

VISION_TASKS = ("cars", "dtd", "eurosat", "gtsrb", "resisc45", "sun397", "svhn")
PAPER_R_VALUES = (32, 128)
SMOKE_R_VALUES = (128,)


def segment_run(target: common.Target, seed: int, r: int, segment: int) -> common.Run:
    overrides = {"method": "pissa", "segment": segment, "r": r, "lora_alpha": 2.0 * r}
    return common.Run(f"r{r}-seg{segment}", target, seed, overrides, {"r": r, "segment": segment})


def run_all(settings: common.StudySettings, r_values: list[int], segments: list[int] | None) -> list[common.RunResult]:
    """Every segment at every rank on every task and seed; all segments when ``segments`` is None."""
    results = []
    groups = [(t, r, s) for t in settings.targets for r in r_values for s in settings.seeds]
    bar = tqdm(total=len(groups) * len(segments or [0]), desc=settings.name, unit="run")
    for target, rank, seed in groups:
        todo = list(segments) if segments is not None else [0]
        while todo:
            segment = todo.pop(0)
            result = common.execute_one(settings, segment_run(target, seed, rank, segment))
            results.append(result)
            bar.update()
            if segments is None and segment == 0:  # now h is known: queue segments 1..l
                todo = list(range(1, result.min_dim // rank))
                bar.total += len(todo)
                bar.refresh()
    bar.close()
    return results


def figure_rows(results: list[common.RunResult]) -> list[dict[str, Any]]:
    """Mean over seeds per (rank, task, segment), and its min-max normalisation per (rank, task)."""
    means = common.mean_over(results, lambda r: (r.run.columns["r"], str(r.run.target), r.run.columns["segment"]))
    rows = []
    for rank, task in sorted({(k[0], k[1]) for k in means}):
        segments = sorted(k[2] for k in means if k[:2] == (rank, task))
        values = [means[(rank, task, s)] for s in segments]
        for segment, value, norm in zip(segments, values, common.min_max(values)):
            rows.append(
                {"r": rank, "task": task, "segment": segment, "value": round(value, 4), "normalised": round(norm, 4)}
            )
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """One panel per rank: normalised metric against segment index, one line per dataset."""
    panels = []
    for rank in sorted({r["r"] for r in rows}):
        series = {}
        for task in sorted({r["task"] for r in rows if r["r"] == rank}):
            points = [r for r in rows if r["r"] == rank and r["task"] == task]
            series[task.split(":")[-1]] = ([p["segment"] for p in points], [p["normalised"] for p in points])
        ticks = sorted({r["segment"] for r in rows if r["r"] == rank})
        panels.append(
            Panel(
                f"r = {rank}",
                "segment index i (0 = principal)",
                "min-max normalised metric",
                series,
                xticks=ticks,
                xticklabels=[str(t) for t in ticks],
            )
        )
    return line_panels(panels, path, suptitle="Figure 1: single LoRA initialised from SVD segment i")


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--smoke`` swaps the paper defaults for the embedded default."""
    parser = argparse.ArgumentParser(prog="python -m goat.studies.segments", description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, family="vision", tasks=VISION_TASKS)
    parser.add_argument(
        *flag_names("r_values"),
        type=int,
        nargs="+",
        default=None,
        help="Values of the rank r (default 32 128; smoke 128).",
    )
    parser.add_argument(
        "--segments", type=int, nargs="+", default=None, help="Segment indices (default: all, 0..h/r-1)."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    common.configure_logging()
    try:
        settings = common.resolve(ns, "segments", family="vision", tasks=VISION_TASKS)
        results = run_all(settings, list(settings.pick(ns.r_values, PAPER_R_VALUES, SMOKE_R_VALUES)), ns.segments)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = figure_rows(results)
    out = settings.out
    common.write_csv(out / "runs.csv", [r.row() for r in results])
    common.write_csv(out / "figure1.csv", rows)
    plot(rows, out / "figure1.png")
    text = common.markdown_table(["r", "task", "segment", "value", "normalised"], [list(r.values()) for r in rows])
    print(
        f"\n{common.banner(settings, 'Figure 1 segments', results)}\n\n{text}\n\nwrote {out / 'figure1.png'}, {out / 'figure1.csv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
