"""``docs/claims.md``: every section, a summary table, and how the numbers were made."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from goat.claims import stats
from goat.claims.ledger import Config, Ledger, Record, run_settings
from goat.claims.scale import BALANCE_TERM_TWICE, Scale
from goat.claims.section import Section


def git_commit() -> str:
    """Short hash of the checked-out commit (``unknown`` outside a git checkout)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command(config: Config) -> str:
    """The ``python -m goat.train`` command of one run (other settings from the family YAML's task block)."""
    words = []
    for name, value in run_settings(config).items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        words += [
            f"--{name}",
            *(f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v) for v in values),
        ]
    return f"python -m goat.train {config.family} --task {config.task} {' '.join(words)} --seed {config.seed}"


def section_records(ledger: Ledger, section: Section) -> list[Record]:
    """The records of the section's runs (each configuration once)."""
    keys = dict.fromkeys(c.key() for c in section.configs)
    return [ledger.records[k] for k in keys if k in ledger.records]


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def headline(section: Section) -> str:
    """The first judged comparison of a section, in one line."""
    for c in section.comparisons:
        if c.result is not None:
            d = c.result.difference
            return f"{c.a} − {c.b}: {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}] {c.unit} ({c.effect.text()})"
    return "–"


def render_section(section: Section, ledger: Ledger) -> str:
    records = section_records(ledger, section)
    diverged = sum(r.value is None for r in records)
    seconds = sum(r.seconds for r in records)
    example = f" One run: `{command(section.configs[0])}`" if section.configs else ""
    ran = (
        f" {len(records)} runs ({diverged} diverged), {minutes(seconds)} of training and evaluation (runs shared with other sections included)."
        if records
        else ""
    )
    figures = "".join(f"\n\n![section {section.number}](claims/{p.name})" for p in section.plots)
    return (
        f"## {'Regime' if section.number == 0 else f'Claim {section.number}'}: {section.title}\n\n"
        f"**Paper.** {section.paper}\n\n"
        f"**Run here.** {section.setup}{ran}{example}\n\n"
        f"**Result** ({section.caption}):\n\n"
        f"{section.table}{figures}\n\n"
        f"**Verdict: {section.verdict}.** Rule: {section.rule} (see *How to read*).{(' ' + section.note) if section.note else ''}\n"
    )


def render(sections: Sequence[Section], ledger: Ledger, scale: Scale, total_seconds: float, *, pending: int = 0) -> str:
    """The whole document."""
    summary = ["| section | verdict | first comparison (difference, 95% CI, paper's δ) |", "|---|---|---|"]
    summary += [f"| {s.number}. {s.title} | {s.verdict} | {headline(s)} |" for s in sections]
    records = list(ledger.records.values())
    floor = "/".join(str(n) for n in sorted({t.primary_min_seeds for t in scale.tasks}))
    cap = "/".join(str(n) for n in sorted({t.primary_max_seeds for t in scale.tasks}))
    machine = f"torch threads per worker: 1 unless stated, CPU cores: {os.cpu_count()}"
    status = (
        f"**Status: incomplete — {pending} runs requested by the next round are not done yet; every verdict marked "
        "pending waits for them.**"
        if pending
        else "**Status: complete — no section requests further runs.**"
    )
    return (
        "# Claims ledger: the paper's claims, measured small\n\n"
        f"Written by `python -m goat.claims` ({'smoke scale: a check of the code path, not evidence' if scale.name == 'smoke' else 'full scale'}) "
        f"on {time.strftime('%Y-%m-%d')} at commit {git_commit()}: {len(records)} training runs recorded "
        f"({sum(r.value is None for r in records)} diverged), {minutes(sum(r.seconds for r in records))} of training and "
        f"evaluation in all (worker time), this invocation {minutes(total_seconds)}; {machine}. The machine may be shared, so "
        "times are indicative. Rerunning `bash scripts/claims.sh` skips every run already in `docs/claims/runs.jsonl`.\n\n"
        f"{status}\n\n"
        "Each claim is a small controlled experiment on the embedded defaults (packaged MiniLM or SmolLM2-135M-Instruct on "
        "packaged human-labelled tweets and drug reviews), far from the paper's 7B models and GPU budgets: a verdict says what holds *at "
        "this scale*, not whether the paper is right.\n\n" + "\n".join(summary) + "\n\n"
        "## How to read\n\n"
        "* Every seed draws its own training subset and data order; all methods see the same subset for the same seed, "
        "so comparisons are paired by seed. Intervals are two-sided 95 % Student-t intervals over seeds; p-values are "
        "two-sided paired t-tests (`scipy.stats.ttest_rel`).\n"
        "* Tuning brackets: each method's learning rate is searched on a ×2 log grid that extends toward whichever edge "
        "holds the best mean over the sweep seeds until the best has a worse (or diverged) neighbour on both sides. A "
        "comparison involving an arm whose optimum was not bracketed gets no verdict. The sweep seeds are part of the "
        "reported mean (a selection effect shared by every method). A search whose every rate scores the same (a budget "
        "too short to learn, each rate predicting the majority class) tries both edges once, then is *flat*: a "
        "learning-curve point at that score, and no verdict for a comparison.\n"
        "* A diverged run (non-finite loss) has no number: it is counted, left out of the means, and a rate where a "
        "sweep seed diverged counts as worse than any finished rate.\n"
        f"* Verdicts, from the 95 % interval of the paired difference A − B against the paper's effect δ (named in each "
        f"row with its table): *{stats.REPRODUCED}* if the interval lies above 0; *{stats.CONTRADICTED}* if it lies "
        f"entirely below δ (the paper's effect is ruled out at this scale; with no δ, below 0); *{stats.UNRESOLVED}* "
        "otherwise, stated with the minimum detectable effect (MDE: the true difference a paired t-test over these seeds "
        "detects with 80 % power at α = 0.05, at the measured spread) and the seeds that would resolve δ.\n"
        "* Many rows, one α: each row's interval is 95 % on its own, with no correction across the ledger's rows, so "
        "about one row in 20 with no true difference still shows an interval clear of 0. A claim as a whole is "
        "reproduced only if every one of its rows is, which needs no correction; read a single row with p near 0.05 "
        "as weak evidence.\n"
        f"* Seeds: the primary comparisons (GOAT against LoRA, MoLoRA and PiSSA) run a floor of {floor} seeds; if δ "
        "needs more at the spread of those seeds (80 % power), they run that many, up to "
        f"{cap}; beyond {cap} they stay at the floor and the row names the seeds δ would need. The other comparisons "
        "run the task's minimum. Neither rule looks at the mean difference.\n"
        + "".join(
            f"* **A fault in the {task.name} task's runs**: {BALANCE_TERM_TWICE}. Its accuracy rows measure that "
            f"configuration; its training-loss rows that compare an MoE method read *{stats.BIASED}*.\n"
            for task in scale.tasks
            if task.balance_term_twice
        )
        + "* Raw data: `claims/runs.jsonl` (one line per run, with its training-loss curve), per-section CSVs "
        "`claims/claim<N>.csv`, `claims/runs.csv`.\n\n" + "\n".join(render_section(s, ledger) for s in sections)
    )
