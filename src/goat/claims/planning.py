"""``python -m goat.claims --plan``: the runs still to do and their estimated time.

The ledger decides its later runs from earlier results (a search extends its grid, a comparison
adds seeds), so the plan simulates the rounds on a stand-in ledger whose missing runs score as if
every search brackets at the middle of its start grid and every comparison needs its seed cap:
the count is what the ledger runs when nothing needs extending, and each extension adds one rate
on the sweep seeds.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from goat.claims.ledger import OK, Config, Ledger, Record
from goat.claims.scale import Scale, TaskScale


def stand_in_value(config: Config, task: TaskScale) -> float:
    """A made-up score for planning only: peaked at the start grid's middle rate, with seed noise of sd ≈ 3 points."""
    middle = sorted(task.start_learning_rates)[len(task.start_learning_rates) // 2]
    noise = (zlib.crc32(config.key().encode()) % 1000) / 1000 * 10 - 5
    return 60.0 - 4 * abs(math.log2(config.learning_rate / middle)) + noise


def plan_text(scale: Scale, sections: Sequence[int], ledger: Ledger, step_children: int) -> str:
    """Simulated rounds until nothing is requested; the runs not yet recorded, per task, with their time."""
    from goat.claims.claims import SECTIONS  # the sections import the planner's callers

    tasks = {(t.family, t.task): t for t in scale.tasks}
    with tempfile.TemporaryDirectory() as scratch:
        simulated = Ledger(Path(scratch) / "runs.jsonl")
        simulated.records = dict(ledger.records)
        planned: dict[str, Config] = {}
        for _ in range(50):
            simulated.requested.clear()
            for number in sections:
                SECTIONS[number](simulated, scale, Path(scratch), measure=False)
            if not simulated.requested:
                break
            for key, config in simulated.requested.items():
                planned[key] = config
                simulated.records[key] = Record(
                    config, OK, stand_in_value(config, tasks[(config.family, config.task)]), 0.0
                )
    per_task: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for config in planned.values():
        task = tasks[(config.family, config.task)]
        per_task[task.name] += 1
        seconds[task.name] += (
            task.steps((config.max_train_samples, config.num_train_epochs)) * task.seconds_per_step
            + task.seconds_per_eval
        )
    lines = [
        f"{scale.name} scale, sections {' '.join(map(str, sections))}: {len(ledger.records)} runs already recorded in {ledger.record_file}"
    ]
    for name, n in sorted(per_task.items()):
        lines.append(f"  {name}: {n} runs to do, ~{seconds[name] / 60:.0f} min of one worker")
    total = sum(seconds.values()) + step_children * scale.seconds_per_step_child
    lines.append(
        f"  claim 7: {step_children} step-cost measurements to do (~{scale.seconds_per_step_child:.0f} s each)"
    )
    lines.append(
        f"  estimated: ~{total / 60:.0f} min of worker time, ~{total / 120:.0f} min with 2 workers (if every search "
        "brackets in its start grid; each extension adds one rate × the sweep seeds)"
    )
    return "\n".join(lines)
