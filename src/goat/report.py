"""``python -m goat.report``: the paper-style table from ``results/<family>/results.jsonl``.

Each run contributes its best epoch (the authors report the best epoch); runs that differ only
in seed are averaged. Rows are methods, columns tasks, plus the average over tasks.
``--compare-paper`` lays the measured numbers beside the published ones (Tables 1-4, typed in
:mod:`goat.paper_results`) with their difference. Runs of a paper analysis (``goat.studies``)
are listed only with ``--study <name>``.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from goat.paper_results import NAMES, PublishedTable, canonical_task, published_for
from goat.train.results import read_results


def best_per_run(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run (run_id): the epoch with the highest primary metric."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["run_id"]
        if key not in best or row["value"] > best[key]["value"]:
            best[key] = row
    return list(best.values())


def summarise(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, tuple[float, float, int]]]]:
    """tasks, and {method: {task: (mean, std, n_seeds)}} over the best epoch of each run."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in best_per_run(rows):
        values[row["method"]][row["task"]].append(100.0 * row["value"])
    tasks = sorted({row["task"] for row in rows})
    table = {
        method: {task: (statistics.mean(v), statistics.pstdev(v), len(v)) for task, v in per_task.items()}
        for method, per_task in values.items()
    }
    return tasks, table


def format_table(tasks: list[str], table: dict[str, dict[str, tuple[float, float, int]]]) -> str:
    """Markdown table: mean (± std when several seeds) per task and the average over tasks."""
    header = ["method", *tasks, "avg"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in sorted(table, key=lambda m: -statistics.mean(v[0] for v in table[m].values())):
        cells = []
        for task in tasks:
            if task not in table[method]:
                cells.append("–")
                continue
            mean, std, n = table[method][task]
            cells.append(f"{mean:.2f}" + (f" ± {std:.2f}" if n > 1 else ""))
        means = [table[method][t][0] for t in tasks if t in table[method]]
        avg = f"{statistics.mean(means):.2f}" if len(means) == len(tasks) else "–"
        lines.append("| " + " | ".join([method, *cells, avg]) + " |")
    return "\n".join(lines)


def of_study(rows: list[dict[str, Any]], study: str | None) -> list[dict[str, Any]]:
    """Rows of one study's runs (``study=None``: the runs that belong to no study)."""
    return [row for row in rows if (row.get("hparams") or {}).get("study") == study]


Measured = dict[str, dict[str, tuple[float, int]]]  # method -> column -> (mean over seeds, n)


def measured_for(rows: list[dict[str, Any]], published: PublishedTable) -> Measured:
    """Best epoch per run, in the published table's columns and scale, averaged over seeds.

    A run counts for the column its task names (aliases allowed) and for every column named by
    a key of its ``metrics`` (e.g. one commonsense run scoring eight datasets).
    """
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in best_per_run(rows):
        found = {canonical_task(row["task"]): row["value"]}
        for key, value in (row.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value) and canonical_task(key) not in found:
                found[canonical_task(key)] = value
        for column, value in found.items():
            if column in published.columns and math.isfinite(value):  # MT-Bench: NaN until judged
                values[row["method"]][column].append(value * (1.0 if column in published.raw_scale else 100.0))
    return {m: {c: (statistics.mean(v), len(v)) for c, v in per.items()} for m, per in values.items()}


def comparison_rows(measured: Measured, published: PublishedTable) -> list[dict[str, Any]]:
    """Long form: one row per (measured method, measured column) with the paper's value and the difference."""
    rows = []
    for method in sorted(measured):
        for column in published.columns:
            if column not in measured[method]:
                continue
            mean, n = measured[method][column]
            paper = published.value(method, column) if method in published.rows else None
            rows.append({
                "method": method, "task": column, "measured": round(mean, 4), "seeds": n, "paper": paper,
                "difference": None if paper is None else round(mean - paper, 4), "source": published.table,
            })  # fmt: skip
    return rows


def format_comparison(measured: Measured, published: PublishedTable) -> str:
    """Markdown: cells ``measured / paper (measured − paper)`` over the measured columns."""
    columns = [c for c in published.columns if any(c in per for per in measured.values())]
    order = [m for m in published.rows if m in measured] + sorted(m for m in measured if m not in published.rows)
    lines = ["| method | " + " | ".join(columns) + " | avg |", "|" + "---|" * (len(columns) + 2)]
    for method in order:
        cells = []
        for column in columns:
            ours = measured[method].get(column)
            paper = published.value(method, column) if method in published.rows else None
            cells.append(_cell(None if ours is None else ours[0], paper))
        complete = all(c in measured[method] for c in published.columns)
        ours_avg = statistics.mean(measured[method][c][0] for c in published.columns) if complete else None
        paper_avg = published.average.get(method, published.mean_of_row(method) if method in published.rows else None)
        label = published.row_names.get(method, NAMES.get(method, method))
        lines.append(f"| {method} ({label}) | " + " | ".join(cells) + f" | {_cell(ours_avg, paper_avg)} |")
    missing = [published.row_names.get(m, NAMES.get(m, m)) for m in published.rows if m not in measured]
    if missing:
        lines.append(f"\nPaper rows without runs here: {', '.join(missing)}.")
    return "\n".join(lines)


def _cell(ours: float | None, paper: float | None) -> str:
    text = "–" if ours is None else f"{ours:.2f}"
    if paper is None:
        return f"{text} / –"
    return f"{text} / {paper:.2f}" + ("" if ours is None else f" ({ours - paper:+.2f})")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m goat.report", description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="glue", help="Task family folder under --results-dir.")
    parser.add_argument("--results-dir", default="results", help="Root results folder.")
    parser.add_argument("--tasks", nargs="+", default=None, help="Only these tasks.")
    parser.add_argument("--study", default=None, help="List the runs of this goat.studies analysis (e.g. ablation) instead.")
    parser.add_argument("--compare-paper", action="store_true", help="Measured beside the paper's Table 1-4 numbers, with the difference.")
    parser.add_argument("--csv", default=None, help="With --compare-paper: also write the comparison (long form) to this CSV file.")
    args = parser.parse_args(argv)
    rows = of_study(read_results(args.results_dir, args.family), args.study)
    if args.tasks:
        rows = [r for r in rows if r["task"] in args.tasks]
    if not rows:
        study = f" of study {args.study!r}" if args.study else ""
        print(f"error: no results{study} in {args.results_dir}/{args.family}/results.jsonl", file=sys.stderr)
        return 2
    if args.compare_paper:
        return compare_main(rows, args.family, args.csv)
    if args.csv:
        print("error: --csv needs --compare-paper", file=sys.stderr)
        return 2
    tasks, table = summarise(rows)
    seeds = sorted({r["seed"] for r in rows})
    smoke = any(r.get("smoke") for r in rows)
    print(f"{args.family}: best epoch per run, mean over seeds {seeds}, metric x100" + (" — SMOKE RUN, not a reproduction" if smoke else ""))
    print(format_table(tasks, table))
    return 0


def compare_main(rows: list[dict[str, Any]], family: str, csv_path: str | None) -> int:
    """Print (and optionally write) the measured-vs-published view of ``rows``."""
    try:
        published = published_for(family)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    measured = measured_for(rows, published)
    if not measured:
        tasks = sorted({r["task"] for r in rows})
        print(f"error: no run of {tasks} has a (finite) value in a column of paper {published.table} ({', '.join(published.columns)}).", file=sys.stderr)
        return 2
    smoke = any(r.get("smoke") for r in rows)
    print(f"{family}: measured (best epoch, mean over seeds) / {published.citation()} (measured − paper)"
          + (" — SMOKE RUN, not a reproduction" if smoke else ""))  # fmt: skip
    print(format_comparison(measured, published))
    if csv_path:
        write_csv(Path(csv_path), comparison_rows(measured, published))
        print(f"wrote {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
