"""``docs/claims.md``: every claim's section, a summary table, and how the numbers were made."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from goat.claims import stats
from goat.claims.claims import Section, command
from goat.claims.ledger import Ledger, Record
from goat.claims.scale import Scale


def git_commit() -> str:
    """Short hash of the checked-out commit (``unknown`` outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def section_records(ledger: Ledger, section: Section) -> list[Record]:
    """The records of the section's runs (each configuration once)."""
    keys = dict.fromkeys(c.key() for c in section.configs)
    return [ledger.records[k] for k in keys if k in ledger.records]


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def headline(section: Section) -> str:
    """The first paired comparison of a section, in one line."""
    for c in section.comparisons:
        if c.result is not None:
            d = c.result.difference
            return f"{c.a} − {c.b}: {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}] {c.unit}, p = {c.result.p_value:.2g}"
    return "–"


def render_section(section: Section, ledger: Ledger) -> str:
    records = section_records(ledger, section)
    runs = len(records)
    diverged = sum(r.value is None for r in records)
    seconds = sum(r.seconds for r in records)
    example = f" One run: `{command(section.configs[0])}`" if section.configs else ""
    ran = f"{runs} runs ({diverged} diverged), {minutes(seconds)} of training and evaluation (runs shared with other claims included)" if runs else ""
    plot = f"\n\n![claim {section.number}](claims/{section.plot.name})" if section.plot else ""
    return (
        f"## Claim {section.number}: {section.title}\n\n"
        f"**Paper.** {section.paper}\n\n"
        f"**Run here.** {section.setup} {ran}.{example}\n\n"
        f"**Result** ({section.caption}):\n\n"
        f"{section.table}{plot}\n\n"
        f"**Verdict: {section.verdict}.** Rule: {section.rule} (see *How to read*).{(' ' + section.note) if section.note else ''}\n"
    )


def render(sections: Sequence[Section], ledger: Ledger, scale: Scale, total_seconds: float) -> str:
    """The whole document."""
    summary = ["| claim | verdict | first comparison (difference, 95% CI) |", "|---|---|---|"]
    summary += [f"| {s.number}. {s.title} | {s.verdict} | {headline(s)} |" for s in sections]
    records = list(ledger.records.values())
    machine = f"torch threads: {torch.get_num_threads()}, CPU cores: {os.cpu_count()}"
    return (
        "# Claims ledger: the paper's claims, measured small\n\n"
        f"Written by `python -m goat.claims` ({'smoke scale: a check of the code path, not evidence' if scale.name == 'smoke' else 'full scale'}) "
        f"on {time.strftime('%Y-%m-%d')} at commit {git_commit()}: {len(records)} training runs recorded "
        f"({sum(r.value is None for r in records)} diverged), {minutes(sum(r.seconds for r in records))} of training and "
        f"evaluation in all, this invocation {minutes(total_seconds)}; {machine}. The machine may be shared, so times are "
        "indicative. Rerunning `bash scripts/claims.sh` skips every run already in `docs/claims/runs.jsonl`.\n\n"
        "Each claim is a small controlled experiment on the embedded defaults (packaged MiniLM or SmolLM2-135M-Instruct on "
        "packaged human-labelled tweets), far from the paper's 7B models and GPU budgets: a verdict says what holds *at "
        "this scale*, not whether the paper is right.\n\n"
        + "\n".join(summary) + "\n\n"
        "## How to read\n\n"
        "* Every seed draws its own training subset and data order; all methods see the same subset for the same seed, "
        "so comparisons are paired by seed. Intervals are two-sided 95 % Student-t intervals over seeds; p-values are "
        "two-sided paired t-tests (`scipy.stats.ttest_rel`).\n"
        "* Fair comparison: each method's *tuned* result is at the learning rate with the best mean over the sweep seeds "
        "(the same seeds are then part of the reported mean, a selection effect shared by every method); the equal-lr "
        "comparison is reported beside it.\n"
        "* A diverged run (non-finite loss) has no number: it is counted, left out of the means, and a learning rate where "
        "a sweep seed diverged cannot be chosen as best.\n"
        f"* Verdicts follow written rules on the 95 % interval of the paired difference A − B, never a judgement: "
        f"*superiority* (\"A beats B\"): {stats.HOLDS} if the interval lies above 0, {stats.FAILS} if it lies below "
        f"{stats.MATERIAL} points (an advantage that large is ruled out), {stats.INCONCLUSIVE} otherwise; "
        f"*non-inferiority* (\"A costs nothing\"): holds if it lies above −{stats.MATERIAL}, fails if below −{stats.MATERIAL}; "
        f"*cost equivalence*: the ratio's interval inside [1/{stats.COST_TOLERANCE}, {stats.COST_TOLERANCE}] holds, entirely "
        "outside fails. A claim of several rows holds if every row holds and fails if any row fails.\n"
        f"* Raw data: `claims/runs.jsonl` (one line per run), per-claim CSVs `claims/claim<N>.csv`; results rows of every "
        "run also go to the results folder given by `--results-dir`.\n\n"
        + "\n".join(render_section(s, ledger) for s in sections)
    )
