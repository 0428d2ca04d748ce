"""``python -m goat.claims``: run the claims ledger (resumable) and write docs/claims.md.

    python -m goat.claims --plan          # how many runs are left and the time they should take
    python -m goat.claims                 # the full ledger (about two hours on 2 CPU cores)
    python -m goat.claims --claims 1 7    # some claims only (runs already recorded are reused)
    python -m goat.claims --smoke         # tiny grid, into results/claims-smoke: a check of the code path
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import transformers

from goat.claims.claims import CLAIMS, step_children_left
from goat.claims.document import render
from goat.claims.ledger import Ledger
from goat.claims.scale import FULL, SMOKE, Scale
from goat.studies.common import write_csv
from goat.train.settings import flag_names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m goat.claims", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="Tiny grid (seconds per run): a check of the code path, not evidence.")
    parser.add_argument("--claims", type=int, nargs="+", choices=sorted(CLAIMS), default=sorted(CLAIMS), help="Claims to run (default all).")
    parser.add_argument("--out", default=None, help="Folder for claims.md and claims/ (default docs; smoke: results/claims-smoke).")
    parser.add_argument(*flag_names("results_dir"), default=None, help="Results rows of every run (default results/claims[-smoke]).")
    parser.add_argument(*flag_names("output_dir"), default=None, help="Run folders (default outputs/claims[-smoke]).")
    parser.add_argument("--plan", action="store_true", help="Print the runs still to do and their estimated time; train nothing.")
    return parser


def plan(scale: Scale, claims: list[int], out: Path, record_file: Path) -> str:
    """Runs not yet recorded, per family, and the time they should take (the scale's measured seconds per run)."""
    ledger = Ledger(record_file, Path("unused"), Path("unused"), smoke=scale.name == "smoke", dry_run=True)
    with tempfile.TemporaryDirectory() as scratch:
        for number in claims:
            if number != 7:
                CLAIMS[number](ledger, scale, Path(scratch))
    per_family = Counter(c.family for c in ledger.planned.values())
    children = step_children_left(scale, out / "claims") if 7 in claims else 0
    seconds = sum(scale.seconds_per_run[f] * n for f, n in per_family.items()) + children * scale.seconds_per_step_child
    done = len(ledger.records)
    lines = [f"{scale.name} scale, claims {' '.join(map(str, claims))}: {done} runs already recorded in {record_file}"]
    lines += [f"  {family}: {n} runs to do (~{scale.seconds_per_run[family]:.0f} s each)" for family, n in sorted(per_family.items())]
    lines += [f"  claim 7: {children} step-cost measurements to do (~{scale.seconds_per_step_child:.0f} s each)"]
    lines += [f"  estimated time: {seconds / 60:.0f} min"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()
    scale = SMOKE if ns.smoke else FULL
    suffix = "-smoke" if ns.smoke else ""
    out = Path(ns.out or ("results/claims-smoke" if ns.smoke else "docs"))
    data = out / "claims"
    record_file = data / "runs.jsonl"
    if ns.plan:
        print(plan(scale, ns.claims, out, record_file))
        return 0
    ledger = Ledger(record_file, Path(ns.results_dir or f"results/claims{suffix}"), Path(ns.output_dir or f"outputs/claims{suffix}"),
                    smoke=ns.smoke)  # fmt: skip
    started = time.time()
    sections = []
    for number in ns.claims:
        print(f"== claim {number}", flush=True)
        section = CLAIMS[number](ledger, scale, data)
        write_csv(data / f"claim{number}.csv", section.rows)
        sections.append(section)
        print(f"   {section.verdict}", flush=True)
    write_csv(data / "runs.csv", [{**r.config.__dict__, "status": r.status, "value": r.value, "seconds": r.seconds, "load_cv": r.load_cv}
                                   for r in ledger.records.values()])  # fmt: skip
    (out / "claims.md").write_text(render(sections, ledger, scale, time.time() - started))
    print(f"wrote {out / 'claims.md'} and {data}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
