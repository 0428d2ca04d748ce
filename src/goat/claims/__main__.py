"""``python -m goat.claims``: run the claims ledger (resumable) and write docs/claims.md.

    python -m goat.claims --plan          # runs still to do and their estimated time
    python -m goat.claims                 # the full ledger (several hours on 2 CPU cores; resumable)
    python -m goat.claims --claims 0 1    # the learning curve and claim 1 only (recorded runs are reused)
    python -m goat.claims --smoke         # tiny grid, into results/claims-smoke: a check of the code path

The ledger works in rounds: every section asks the ledger for the runs it needs now (a claim that
needs a tuned learning rate asks for its seeds only once the search is decided), the requested runs
are trained in parallel workers (:mod:`goat.claims.executor`), the document is rewritten with what
is known so far, and the next round asks again, until nothing is requested.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import transformers

from goat.claims.claims import SECTIONS, step_children_left
from goat.claims.document import render
from goat.claims.executor import Workers, train_requested
from goat.claims.ledger import Ledger
from goat.claims.planning import plan_text
from goat.claims.scale import FULL, SMOKE
from goat.studies.common import write_csv
from goat.train.settings import flag_names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m goat.claims", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="Tiny grid (seconds per run): a check of the code path, not evidence."
    )
    parser.add_argument(
        "--claims",
        type=int,
        nargs="+",
        choices=sorted(SECTIONS),
        default=sorted(SECTIONS),
        help="Sections to run (0 = the learning curve; default all).",
    )
    parser.add_argument(
        "--out", default=None, help="Folder for claims.md and claims/ (default docs; smoke: results/claims-smoke)."
    )
    parser.add_argument(
        *flag_names("results_dir"), default=None, help="Results rows of every run (default results/claims[-smoke])."
    )
    parser.add_argument(*flag_names("output_dir"), default=None, help="Run folders (default outputs/claims[-smoke]).")
    parser.add_argument("--workers", type=int, default=2, help="Training processes in parallel (default 2).")
    parser.add_argument("--threads_per_worker", type=int, default=1, help="torch threads in each (default 1).")
    parser.add_argument(
        "--max_rounds", type=int, default=None, help="Stop after this many training rounds (default: until done)."
    )
    parser.add_argument(
        "--plan", action="store_true", help="Print the runs still to do and their estimated time; train nothing."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()
    if ns.workers < 1 or ns.threads_per_worker < 1:
        raise SystemExit("--workers and --threads_per_worker must be at least 1.")
    scale = SMOKE if ns.smoke else FULL
    suffix = "-smoke" if ns.smoke else ""
    out = Path(ns.out or ("results/claims-smoke" if ns.smoke else "docs"))
    data = out / "claims"
    ledger = Ledger(data / "runs.jsonl")
    if ns.plan:
        print(plan_text(scale, ns.claims, ledger, step_children_left(scale, data) if 7 in ns.claims else 0))
        return 0
    workers = Workers(
        ns.workers,
        ns.threads_per_worker,
        Path(ns.results_dir or f"results/claims{suffix}"),
        Path(ns.output_dir or f"outputs/claims{suffix}"),
        smoke=ns.smoke,
    )
    started, rounds = time.time(), 0
    while True:
        ledger.requested.clear()
        sections = [SECTIONS[number](ledger, scale, data, measure=True) for number in ns.claims]
        for section in sections:
            write_csv(data / f"claim{section.number}.csv", section.rows)
        write_csv(data / "runs.csv", [record_row(r) for r in ledger.records.values()])
        (out / "claims.md").write_text(
            render(sections, ledger, scale, time.time() - started, pending=len(ledger.requested))
        )
        if not ledger.requested or (ns.max_rounds is not None and rounds >= ns.max_rounds):
            break
        rounds += 1
        print(f"== round {rounds}: {len(ledger.requested)} runs requested", flush=True)
        train_requested(ledger, workers)
    print(f"wrote {out / 'claims.md'} and {data}/ ({len(ledger.requested)} runs still requested)")
    return 0


def record_row(record) -> dict:
    """One line of runs.csv: the configuration, the outcome and the timing (the loss curve stays in runs.jsonl)."""
    return {
        **record.config.__dict__,
        "status": record.status,
        "value": record.value,
        "seconds": record.seconds,
        "load_cv": record.load_cv,
        "load_deviation": record.load_deviation,
        "zero_shot": record.zero_shot,
    }


if __name__ == "__main__":
    sys.exit(main())
