"""Table 6: MoLoRA, HydraLoRA and GOAT at several learning rates (paper: GSM8K, LLaMA-2-7B, 1e-5..5e-5).

Every other setting is the family's (configs/<family>.yaml); the paper trains on MetaMathQA and
scores GSM8K (§4.8). Output: ``table6.csv`` (learning rate x method, measured beside the paper)
and ``lr_sweep.png`` (metric against learning rate per method).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from goat.report.paper import TABLE_6
from goat.studies import common
from goat.studies.figures import Panel, line_panels
from goat.train.settings import flag_names

METHODS = ("molora", "hydralora", "goat")
SMOKE_METHODS = ("molora", "goat")
PAPER_LEARNING_RATES = (1e-5, 2e-5, 5e-5)
SMOKE_LEARNING_RATES = (2e-4, 1e-3)


def table(results: list[common.RunResult], methods: list[str], learning_rates: list[float]) -> list[dict[str, Any]]:
    """One row per learning rate: the task-averaged metric per method, and the paper's Table 6 row."""
    averages = common.average_over_tasks(results, lambda r: (r.run.columns["learning_rate"], r.run.columns["method"]))
    rows = []
    for lr in learning_rates:
        row: dict[str, Any] = {"learning_rate": lr}
        paper = TABLE_6.rows.get(f"{lr:.0e}")
        for method in methods:
            row[method] = averages.get((lr, method))
            row[f"paper_{method}"] = (
                paper[TABLE_6.columns.index(method)] if paper and method in TABLE_6.columns else None
            )
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], methods: list[str], metric: str, path: Path) -> Path:
    """Metric against learning rate, one line per method."""
    series = {m: ([r["learning_rate"] for r in rows], [r[m] for r in rows]) for m in methods}
    panel = Panel("Table 6: learning-rate sweep", "learning rate", f"{metric} (x100)", series, logx=True)
    return line_panels([panel], path)


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--smoke`` swaps the paper defaults for the embedded default."""
    parser = argparse.ArgumentParser(prog="python -m goat.studies.lr_sweep", description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, family="math", tasks=["gsm8k"])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="Methods (default molora hydralora goat, Table 6's; smoke molora goat).",
    )
    parser.add_argument(
        *flag_names("learning_rates"),
        type=float,
        nargs="+",
        default=None,
        help="Values of learning_rate (default 1e-5 2e-5 5e-5; smoke 2e-4 1e-3).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    common.configure_logging()
    try:
        settings = common.resolve(ns, "lr_sweep", family="math", tasks=["gsm8k"])
        learning_rates = list(settings.pick(ns.learning_rates, PAPER_LEARNING_RATES, SMOKE_LEARNING_RATES))
        methods = list(settings.pick(ns.methods, METHODS, SMOKE_METHODS))
        configs = [
            (f"{method}-lr{lr:g}", {"method": method, "learning_rate": lr}, {"method": method, "learning_rate": lr})
            for lr in learning_rates
            for method in methods
        ]
        results = common.execute(settings, common.expand(settings, configs))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = table(results, methods, learning_rates)
    out = settings.out
    common.write_csv(out / "runs.csv", [r.row() for r in results])
    common.write_csv(out / "table6.csv", rows)
    plot(rows, methods, results[0].metric, out / "lr_sweep.png")
    header = ["learning_rate", *methods, *(f"paper {m}" for m in methods)]
    text = common.markdown_table(
        header,
        [[f"{r['learning_rate']:g}", *(r[m] for m in methods), *(r[f"paper_{m}"] for m in methods)] for r in rows],
    )
    report = f"{common.banner(settings, 'Table 6 learning-rate sweep', results)}\n{TABLE_6.citation()}\n\n{text}\n"
    (out / "table6.md").write_text(report)
    print(f"\n{report}\nwrote {out / 'table6.csv'}, {out / 'lr_sweep.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
