"""``python -m goat.quickstart``: the embedded default, offline on a CPU in minutes.

Fine-tunes the packaged MiniLM on real labelled tweets (dataset/README.md) with goat, lora,
pissa and molora at equal total rank and the paper's other settings (E = 8, k = 2, alpha = 2r,
dropout 0.05, balance coefficient 1e-3), prints the results table and saves a plot of accuracy
per method and goat's per-layer expert load. A small-scale check of the code path, not a
reproduction of a paper table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import transformers

from goat.quickstart.plots import plot_quickstart
from goat.quickstart.rates import TUNE_COMMAND, rates_file, read_rates, tune
from goat.report.table import format_table, summarise
from goat.train.results import read_results
from goat.train.runner import run
from goat.train.settings import flag_names, resolve

METHODS = ("goat", "lora", "pissa", "molora")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m goat.quickstart", description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="Methods to compare.")
    parser.add_argument("--r", type=int, default=8, help="Total rank r of every method (lora_alpha = 2r).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Seeds (one run per method and seed).")
    parser.add_argument(*flag_names("max_train_samples"), type=int, default=2000, help="Training tweets.")
    parser.add_argument(*flag_names("max_eval_samples"), type=int, default=1000, help="Held-out tweets.")
    parser.add_argument(*flag_names("num_train_epochs"), type=float, default=1.0, help="Epochs.")
    parser.add_argument("--out", default=None, help="Folder for results and plot (default: results/quickstart-<time>).")
    parser.add_argument(
        "--tune",
        action="store_true",
        help=f"Find each method's learning rate (bracketing search, seeds 1 2) and store it in {rates_file().name}.",
    )
    parser.add_argument("--workers", type=int, default=2, help="--tune: training processes in parallel.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()  # the new head's "MISSING" load report, once per method
    if args.tune:
        outcome = tune(
            args.methods,
            args.r,
            Path(args.out or "results/quickstart-tune"),
            args.workers,
            max_train_samples=args.max_train_samples,
            max_eval_samples=args.max_eval_samples,
            num_train_epochs=args.num_train_epochs,
        )
        print("\n".join(f"{m}: {o}" for m, o in outcome.items()) + f"\nwrote {rates_file()}")
        return 0
    out = Path(args.out or f"results/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    rates = read_rates()
    print(rate_note(args.methods, rates), flush=True)
    routing_files = {}
    started = time.time()
    for seed in dict.fromkeys(args.seeds):  # a seed given twice is one seed
        for method in args.methods:
            print(f"== {method} (r {args.r}, seed {seed})", flush=True)
            config = resolve(
                "glue",
                overrides={
                    "task": "tweet_sentiment",
                    "method": method,
                    "r": args.r,
                    "lora_alpha": 2.0 * args.r,
                    "seed": seed,
                    **({"learning_rate": rates.learning_rate[method]} if method in rates.learning_rate else {}),
                    "num_train_epochs": args.num_train_epochs,
                    "max_train_samples": args.max_train_samples,
                    "max_eval_samples": args.max_eval_samples,
                    "output_dir": str(out / "runs"),
                    "results_dir": str(out),
                    "save_adapter": False,
                    "save_strategy": "no",
                    "overwrite_output_dir": True,
                    "smoke": True,
                },
            )
            summary = run(config)
            print(f"   accuracy {summary['best']['accuracy']:.4f}  ({summary['train_seconds']} s)", flush=True)
            routing = sorted((out / "runs" / "glue" / summary["run_name"]).glob("routing_epoch*.json"))
            if routing:
                routing_files[method] = routing[-1]
    tasks, table = summarise(read_results(out, "glue"))
    print(
        f"\nEmbedded default (MiniLM + tweet sentiment, {args.max_train_samples} train / {args.max_eval_samples} eval), "
        f"accuracy x100 — a smoke-scale run of the code path, not a paper reproduction:"
    )
    print(format_table(tasks, table))
    plot = plot_quickstart(
        table, {m: json.loads(p.read_text()) for m, p in routing_files.items()}, out / "quickstart.png"
    )
    print(f"\nplot: {plot}\nresults: {out}/glue/results.csv  (python -m goat.report --results_dir {out})")
    print(f"total time {time.time() - started:.0f} s")
    return 0


def rate_note(methods: list[str], rates) -> str:  # noqa: ANN001 (quickstart_rates.Rates)
    """Which learning rate each method runs at, and where it came from."""
    tuned = [f"{m} {rates.learning_rate[m]:g}" for m in methods if m in rates.learning_rate]
    untuned = [m for m in methods if m not in rates.learning_rate]
    parts = []
    if tuned:
        parts.append(
            f"learning rates (each method's own, from {rates_file().name}, found by `{rates.found_by or TUNE_COMMAND}` "
            f"on {rates.date}): {', '.join(tuned)}"
        )
    if untuned:
        parts.append(f"untuned (the YAML's shared rate; run `{TUNE_COMMAND}`): {', '.join(untuned)}")
    return "; ".join(parts)
