"""Figure 5: performance against total rank (8 … 128) for GOAT, MoLoRA and HydraLoRA, with Full FT MoE.

Averages over the CV datasets (§4.6). α = 2r at every rank (Table 10's ratio); E = 8, k = 2 as
elsewhere. Methods without a rank (``full_moe``, ``full``) run once and are drawn as horizontal
reference lines. The text quotes rank 32: GOAT 83.04, MoLoRA 82.15, HydraLoRA 82.12.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from goat.report.paper import FIGURE_5_TEXT
from goat.studies import common
from goat.studies.figures import Panel, line_panels
from goat.train.settings import flag_names

VISION_TASKS = ("cars", "dtd", "eurosat", "gtsrb", "resisc45", "sun397", "svhn")
PAPER_METHODS = ("goat", "molora", "hydralora", "full_moe")
SMOKE_METHODS = ("goat", "molora")
PAPER_R_VALUES = (8, 16, 32, 64, 128)
SMOKE_R_VALUES = (8, 32)
RANKLESS = ("full_moe", "full")


def configurations(methods: list[str], r_values: list[int]) -> list[tuple[str, dict, dict]]:
    configs = []
    for method in methods:
        if method in RANKLESS:
            configs.append((method, {"method": method}, {"method": method, "r": None}))
            continue
        for r in r_values:
            configs.append(
                (f"{method}-r{r}", {"method": method, "r": r, "lora_alpha": 2.0 * r}, {"method": method, "r": r})
            )
    return configs


def figure_rows(results: list[common.RunResult]) -> list[dict[str, Any]]:
    """Task-averaged metric per (method, rank), beside the values the paper's text quotes."""
    averages = common.average_over_tasks(results, lambda r: (r.run.columns["method"], r.run.columns["r"]))
    return [
        {"method": m, "r": r, "value": round(v, 4), "paper_text": FIGURE_5_TEXT.get(m) if r == 32 else None}
        for (m, r), v in sorted(averages.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
    ]


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    ranked = [r for r in rows if r["r"] is not None]
    ranks = sorted({r["r"] for r in ranked})
    series = {
        m: ([r["r"] for r in ranked if r["method"] == m], [r["value"] for r in ranked if r["method"] == m])
        for m in sorted({r["method"] for r in ranked})
    }
    hlines = {r["method"]: r["value"] for r in rows if r["r"] is None}
    panel = Panel(
        "Figure 5: performance across ranks",
        "total rank r",
        "average metric (x100)",
        series,
        logx=True,
        hlines=hlines,
        xticks=ranks,
        xticklabels=[str(r) for r in ranks],
    )
    return line_panels([panel], path)


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--smoke`` swaps the paper defaults for the embedded default."""
    parser = argparse.ArgumentParser(prog="python -m goat.studies.rank_sweep", description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, family="vision", tasks=VISION_TASKS)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help=f"Methods (default {' '.join(PAPER_METHODS)}; smoke {' '.join(SMOKE_METHODS)}).",
    )
    parser.add_argument(
        *flag_names("r_values"),
        type=int,
        nargs="+",
        default=None,
        help="Values of the total rank r (default 8 16 32 64 128; smoke 8 32).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    common.configure_logging()
    try:
        settings = common.resolve(ns, "rank_sweep", family="vision", tasks=VISION_TASKS)
        methods = list(settings.pick(ns.methods, PAPER_METHODS, SMOKE_METHODS))
        r_values = list(settings.pick(ns.r_values, PAPER_R_VALUES, SMOKE_R_VALUES))
        results = common.execute(settings, common.expand(settings, configurations(methods, r_values)))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = figure_rows(results)
    out = settings.out
    common.write_csv(out / "runs.csv", [r.row() for r in results])
    common.write_csv(out / "figure5.csv", rows)
    plot(rows, out / "figure5.png")
    text = common.markdown_table(
        ["method", "r", "average", "paper text (r=32)"],
        [[r["method"], r["r"] or "–", r["value"], r["paper_text"]] for r in rows],
    )
    print(
        f"\n{common.banner(settings, 'Figure 5 rank sweep', results)}\n\n{text}\n\nwrote {out / 'figure5.png'}, {out / 'figure5.csv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
