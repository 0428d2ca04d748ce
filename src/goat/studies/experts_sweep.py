"""Figure 6: performance against the number of experts E and activated experts k at total rank 32.

A configuration ``kinE`` activates k of E experts, each of rank 32 / E (§4.6: "2in8", "4in16",
"8in32", "1in8", ...); α = 64 (2r). GOAT against MoLoRA, averaged over the CV datasets.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from goat.studies import common
from goat.studies.figures import Panel, line_panels

VISION_TASKS = ("cars", "dtd", "eurosat", "gtsrb", "resisc45", "sun397", "svhn")
TOTAL_RANK = 32
PAPER_CONFIGS = ("1in8", "2in8", "4in8", "8in8", "4in16", "8in32")
SMOKE_CONFIGS = ("1in8", "2in8")
METHODS = ("goat", "molora")


def parse_config(text: str) -> tuple[int, int]:
    """``kinE`` -> (k, E)."""
    match = re.fullmatch(r"(\d+)in(\d+)", text)
    if not match:
        raise ValueError(f"--configs entry {text!r}: write kinE, e.g. 2in8.")
    return int(match[1]), int(match[2])


def configurations(methods: list[str], configs: list[str], r: int) -> list[tuple[str, dict, dict]]:
    out = []
    for text in configs:
        k, num_experts = parse_config(text)
        for method in methods:
            overrides = {"method": method, "r": r, "lora_alpha": 2.0 * r, "num_experts": num_experts, "top_k": k}
            out.append(
                (
                    f"{method}-{text}",
                    overrides,
                    {"method": method, "config": text, "num_experts": num_experts, "top_k": k},
                )
            )
    return out


def figure_rows(results: list[common.RunResult], configs: list[str]) -> list[dict[str, Any]]:
    averages = common.average_over_tasks(results, lambda r: (r.run.columns["method"], r.run.columns["config"]))
    return [
        {"config": c, "method": m, "value": round(averages[(m, c)], 4)}
        for c in configs
        for m in sorted({key[0] for key in averages})
        if (m, c) in averages
    ]


def plot(rows: list[dict[str, Any]], configs: list[str], r: int, path: Path) -> Path:
    """Average metric per kinE configuration, one line per method."""
    positions = {c: i for i, c in enumerate(configs)}
    series = {
        m: ([positions[r["config"]] for r in rows if r["method"] == m], [r["value"] for r in rows if r["method"] == m])
        for m in sorted({r["method"] for r in rows})
    }
    panel = Panel(
        f"Figure 6: experts and activation (total rank r = {r})",
        "k in E",
        "average metric (x100)",
        series,
        xticks=list(positions.values()),
        xticklabels=configs,
    )
    return line_panels([panel], path)


def build_parser() -> argparse.ArgumentParser:
    """The command line; ``--smoke`` swaps the paper defaults for the embedded default."""
    parser = argparse.ArgumentParser(prog="python -m goat.studies.experts_sweep", description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, family="vision", tasks=VISION_TASKS)
    parser.add_argument(
        "--configs",
        nargs="+",
        default=None,
        help=f"kinE configurations (default {' '.join(PAPER_CONFIGS)}; smoke {' '.join(SMOKE_CONFIGS)}).",
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="Methods (default goat molora).")
    parser.add_argument("--r", type=int, default=TOTAL_RANK, help="Total rank r shared by the experts (paper: 32).")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    common.configure_logging()
    try:
        settings = common.resolve(ns, "experts_sweep", family="vision", tasks=VISION_TASKS)
        configs = list(settings.pick(ns.configs, PAPER_CONFIGS, SMOKE_CONFIGS))
        results = common.execute(settings, common.expand(settings, configurations(ns.methods, configs, ns.r)))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = figure_rows(results, configs)
    out = settings.out
    common.write_csv(out / "runs.csv", [r.row() for r in results])
    common.write_csv(out / "figure6.csv", rows)
    plot(rows, configs, ns.r, out / "figure6.png")
    text = common.markdown_table(
        ["k in E", "method", "average"], [[r["config"], r["method"], r["value"]] for r in rows]
    )
    print(
        f"\n{common.banner(settings, 'Figure 6 experts sweep', results)}\n\n{text}\n\nwrote {out / 'figure6.png'}, {out / 'figure6.csv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
