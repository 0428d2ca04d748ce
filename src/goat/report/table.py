"""``python -m goat.report``: the paper-style table from ``results/<family>/results.jsonl``.

What is averaged, and what is not:

* A run (one ``run_id``; a resumed run keeps its id) contributes its best epoch (the authors report
  the best epoch), and only when it finished: its rows say ``complete``. Killed or still running
  (``incomplete``), ``diverged`` and judge-``pending`` runs, and rows from before statuses existed,
  are listed below the table, never averaged.
* Runs are averaged only with runs of the same configuration (``config_hash``: every setting but the
  seed) and over **distinct** seeds: a rerun of one configuration and seed counts once, the latest.
* Configurations of one method that differ in a setting (a learning-rate or rank sweep) are separate
  rows, labelled with the settings that differ.

Rows are configurations, columns tasks, cells mean ± sample std (n seeds), plus the average over
tasks. ``--compare-paper`` lays the measured numbers beside the published ones (Tables 1-4, typed
in :mod:`goat.report.paper`) with their difference. Runs of a paper analysis (``goat.studies``)
are listed only with ``--study <name>``.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goat.report.paper import NAMES, PublishedTable, canonical_task, published_for
from goat.train.results import NOT_HASHED, config_hash, read_results

Table = dict[str, dict[str, tuple[float, float, int]]]  # row label -> task -> (mean, sample std, n seeds)
LABEL_EXCLUDED = NOT_HASHED | {"task", "family", "method", "global_batch_size"}


@dataclass
class Run:
    """One run (``run_id``) read back from its rows."""

    rows: list[dict[str, Any]]

    @property
    def first(self) -> dict[str, Any]:
        return self.rows[0]

    @property
    def status(self) -> str:
        """diverged > pending > complete > incomplete; ``unrecorded`` for rows written before statuses existed."""
        statuses = {row.get("status") for row in self.rows}
        for status in ("diverged", "pending", "complete"):
            if status in statuses:
                return status
        return "unrecorded" if None in statuses else "incomplete"

    @property
    def best(self) -> dict[str, Any]:
        """The epoch with the highest finite primary metric (first of equals); the last row if none is finite."""
        finite = [row for row in self.rows if _finite(row.get("value"))]
        return max(finite, key=lambda row: row["value"]) if finite else self.rows[-1]

    @property
    def config_hash(self) -> str:
        return self.first.get("config_hash") or config_hash(self.first.get("hparams") or {})

    @property
    def hparams(self) -> dict[str, Any]:
        return self.first.get("hparams") or {}

    @property
    def finished_at(self) -> str:
        return max(str(row.get("time", "")) for row in self.rows)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def runs_of(rows: list[dict[str, Any]]) -> list[Run]:
    """Rows grouped by run id, in file order."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["run_id"]].append(row)
    return [Run(sorted(group, key=lambda row: row.get("epoch", 0))) for group in grouped.values()]


def counted_runs(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(runs that count: complete, the latest per configuration and seed; complete reruns they supersede)."""
    latest: dict[tuple[str, str, Any], Run] = {}
    superseded = []
    for run in sorted((r for r in runs if r.status == "complete"), key=lambda r: r.finished_at):
        key = (run.first["task"], run.config_hash, run.first["seed"])
        if key in latest:
            superseded.append(latest[key])
        latest[key] = run
    return list(latest.values()), superseded


def differing_settings(runs: list[Run]) -> list[str]:
    """Settings (besides the method) whose values differ between configurations of the same task."""
    by_task: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for run in runs:
        by_task[run.first["task"]][run.config_hash] = run.hparams
    keys: set[str] = set()
    for configs in by_task.values():
        settings = list(configs.values())
        for key in {k for hp in settings for k in hp} - LABEL_EXCLUDED:
            if len({repr(hp.get(key)) for hp in settings}) > 1:
                keys.add(key)
    return sorted(keys)


def row_label(run: Run, settings: list[str]) -> str:
    """``method`` plus ``setting=value`` for each of ``settings``."""
    extra = ", ".join(f"{key}={run.hparams.get(key)}" for key in settings)
    return f"{run.first['method']} ({extra})" if extra else run.first["method"]


def summarise(rows: list[dict[str, Any]]) -> tuple[list[str], Table]:
    """Tasks, and {row label: {task: (mean, sample std, n)}} over distinct seeds of complete runs, metric x100."""
    counted, _ = counted_runs(runs_of(rows))
    settings = differing_settings(counted)
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in counted:
        if _finite(run.best["value"]):
            values[row_label(run, settings)][run.first["task"]].append(100.0 * run.best["value"])
    tasks = sorted({task for per_task in values.values() for task in per_task})
    table = {
        label: {
            task: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
            for task, v in per_task.items()
        }
        for label, per_task in values.items()
    }
    return tasks, table


def format_table(tasks: list[str], table: Table) -> str:
    """Markdown table: mean ± sample std (n seeds) per task and the average over tasks."""
    header = ["configuration", *tasks, "avg"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in sorted(table, key=lambda m: -statistics.mean(v[0] for v in table[m].values())):
        cells = []
        for task in tasks:
            if task not in table[label]:
                cells.append("–")
                continue
            mean, std, n = table[label][task]
            cells.append(f"{mean:.2f} ± {std:.2f} (n={n})" if n > 1 else f"{mean:.2f} (n=1)")
        means = [table[label][t][0] for t in tasks if t in table[label]]
        avg = f"{statistics.mean(means):.2f}" if len(means) == len(tasks) else "–"
        lines.append("| " + " | ".join([label, *cells, avg]) + " |")
    return "\n".join(lines)


NOT_AVERAGED = {
    "incomplete": "killed or still running",
    "diverged": "diverged: no result",
    "pending": "metric awaits its judge (e.g. MT-Bench)",
    "unrecorded": "written before runs recorded a status",
}


def format_not_averaged(rows: list[dict[str, Any]]) -> str:
    """The runs left out of the table, one line each, and how many reruns were superseded."""
    runs = runs_of(rows)
    _, superseded = counted_runs(runs)
    lines = []
    for run in sorted((r for r in runs if r.status in NOT_AVERAGED), key=lambda r: (r.status, r.first["run_name"])):
        last = run.rows[-1]
        lines.append(
            f"- {run.status} ({NOT_AVERAGED[run.status]}): {run.first['run_name']} (seed {run.first['seed']}, "
            f"{len(run.rows)} epoch row(s), last epoch {last.get('epoch')})"
        )
    if superseded:
        lines.append(f"- {len(superseded)} complete rerun(s) of a configuration and seed superseded by a later one.")
    return ("Not in the table:\n" + "\n".join(lines)) if lines else ""


def of_study(rows: list[dict[str, Any]], study: str | None) -> list[dict[str, Any]]:
    """Rows of one study's runs (``study=None``: the runs that belong to no study)."""
    return [row for row in rows if (row.get("hparams") or {}).get("study") == study]


Measured = dict[str, dict[str, tuple[float, int]]]  # method -> column -> (mean over seeds, n)


def measured_for(rows: list[dict[str, Any]], published: PublishedTable) -> Measured:
    """Best epoch per counted run (as :func:`summarise`), in the published table's columns and scale, over seeds.

    A run counts for the column its task names (aliases allowed) and for every column named by
    a key of its ``metrics`` (e.g. one commonsense run scoring eight datasets).
    """
    counted, _ = counted_runs(runs_of(rows))
    settings = differing_settings(counted)
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in counted:
        best = run.best
        found = {canonical_task(best["task"]): best["value"]}
        for key, value in (best.get("metrics") or {}).items():
            if _finite(value) and canonical_task(key) not in found:
                found[canonical_task(key)] = value
        for column, value in found.items():
            if column in published.columns and _finite(value):
                values[row_label(run, settings)][column].append(
                    value * (1.0 if column in published.raw_scale else 100.0)
                )
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
            rows.append(
                {
                    "method": method,
                    "task": column,
                    "measured": round(mean, 4),
                    "seeds": n,
                    "paper": paper,
                    "difference": None if paper is None else round(mean - paper, 4),
                    "source": published.table,
                }
            )
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
    parser.add_argument("--results_dir", "--results-dir", default="results", help="Root results folder.")
    parser.add_argument("--tasks", nargs="+", default=None, help="Only these tasks.")
    parser.add_argument(
        "--study", default=None, help="List the runs of this goat.studies analysis (e.g. ablation) instead."
    )
    parser.add_argument(
        "--compare_paper",
        "--compare-paper",
        action="store_true",
        help="Measured beside the paper's Table 1-4 numbers, with the difference.",
    )
    parser.add_argument(
        "--csv", default=None, help="With --compare-paper: also write the comparison (long form) to this CSV file."
    )
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
    smoke = any(r.get("smoke") for r in rows)
    print(
        f"{args.family}: best epoch of each complete run, mean ± sample std over distinct seeds (n), metric x100"
        + (" — SMOKE RUN, not a reproduction" if smoke else "")
    )
    print(format_table(tasks, table) if table else "(no complete run yet)")
    left_out = format_not_averaged(rows)
    if left_out:
        print("\n" + left_out)
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
        print(
            f"error: no complete run of {tasks} has a (finite) value in a column of paper {published.table} ({', '.join(published.columns)}).",
            file=sys.stderr,
        )
        return 2
    smoke = any(r.get("smoke") for r in rows)
    print(
        f"{family}: measured (best epoch of each complete run, mean over distinct seeds) / {published.citation()} (measured − paper)"
        + (" — SMOKE RUN, not a reproduction" if smoke else "")
    )
    print(format_comparison(measured, published))
    left_out = format_not_averaged(rows)
    if left_out:
        print("\n" + left_out)
    if csv_path:
        write_csv(Path(csv_path), comparison_rows(measured, published))
        print(f"wrote {csv_path}")
    return 0
