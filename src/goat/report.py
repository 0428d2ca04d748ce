"""``python -m goat.report``: the paper-style table from ``results/<family>/results.jsonl``.

Each run contributes its best epoch (the authors report the best epoch); runs that differ only
in seed are averaged. Rows are methods, columns tasks, plus the average over tasks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from typing import Any

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m goat.report", description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="glue", help="Task family folder under --results-dir.")
    parser.add_argument("--results-dir", default="results", help="Root results folder.")
    parser.add_argument("--tasks", nargs="+", default=None, help="Only these tasks.")
    args = parser.parse_args(argv)
    rows = read_results(args.results_dir, args.family)
    if args.tasks:
        rows = [r for r in rows if r["task"] in args.tasks]
    if not rows:
        print(f"error: no results in {args.results_dir}/{args.family}/results.jsonl", file=sys.stderr)
        return 2
    tasks, table = summarise(rows)
    seeds = sorted({r["seed"] for r in rows})
    smoke = any(r.get("smoke") for r in rows)
    print(f"{args.family}: best epoch per run, mean over seeds {seeds}, metric x100" + (" — SMOKE RUN, not a reproduction" if smoke else ""))
    print(format_table(tasks, table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
