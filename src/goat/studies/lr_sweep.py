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

METHODS = ("molora", "hydralora", "goat")
SMOKE_METHODS = ("molora", "goat")
PAPER_LRS = (1e-5, 2e-5, 5e-5)
SMOKE_LRS = (2e-4, 1e-3)


def table(results: list[common.RunResult], methods: list[str], lrs: list[float]) -> list[dict[str, Any]]:
    """One row per learning rate: the task-averaged metric per method, and the paper's Table 6 row."""
    averages = common.average_over_tasks(results, lambda r: (r.run.columns["lr"], r.run.columns["method"]))
    rows = []
    for lr in lrs:
        row: dict[str, Any] = {"lr": lr}
        paper = TABLE_6.rows.get(f"{lr:.0e}")
        for method in methods:
            row[method] = averages.get((lr, method))
            row[f"paper_{method}"] = paper[TABLE_6.columns.index(method)] if paper and method in TABLE_6.columns else None
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], methods: list[str], metric: str, path: Path) -> Path:
    """Metric against learning rate, one line per method."""
    series = {m: ([r["lr"] for r in rows], [r[m] for r in rows]) for m in methods}
    panel = Panel("Table 6: learning-rate sweep", "learning rate", f"{metric} (x100)", series, logx=True)
    return line_panels([panel], path)


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--smoke`` swaps the paper defaults for the embedded default."""
    parser = argparse.ArgumentParser(prog="python -m goat.studies.lr_sweep", description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, family="math", tasks=["gsm8k"])
    parser.add_argument("--methods", nargs="+", default=None, help="Methods (default molora hydralora goat, Table 6's; smoke molora goat).")
    parser.add_argument("--lrs", type=float, nargs="+", default=None, help="Learning rates (default 1e-5 2e-5 5e-5; smoke 2e-4 1e-3).")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    common.configure_logging()
    try:
        settings = common.resolve(ns, "lr_sweep", family="math", tasks=["gsm8k"])
        lrs = list(settings.pick(ns.lrs, PAPER_LRS, SMOKE_LRS))
        methods = list(settings.pick(ns.methods, METHODS, SMOKE_METHODS))
        configs = [
            (f"{method}-lr{lr:g}", {"method": method, "learning_rate": lr}, {"method": method, "lr": lr})
            for lr in lrs for method in methods
        ]  # fmt: skip
        results = common.execute(settings, common.expand(settings, configs))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = table(results, methods, lrs)
    out = settings.out
    common.write_csv(out / "runs.csv", [r.row() for r in results])
    common.write_csv(out / "table6.csv", rows)
    plot(rows, methods, results[0].metric, out / "lr_sweep.png")
    header = ["lr", *methods, *(f"paper {m}" for m in methods)]
    text = common.markdown_table(header, [[f"{r['lr']:g}", *(r[m] for m in methods), *(r[f"paper_{m}"] for m in methods)] for r in rows])
    report = f"{common.banner(settings, 'Table 6 learning-rate sweep', results)}\n{TABLE_6.citation()}\n\n{text}\n"
    (out / "table6.md").write_text(report)
    print(f"\n{report}\nwrote {out / 'table6.csv'}, {out / 'lr_sweep.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
