"""How long a user waits before anything happens: ``import goat`` and ``--help``, beside ``import torch``.

Each command runs in a fresh interpreter (``python -X importtime`` is not used: it slows imports),
``--rounds`` times, the commands interleaved so that machine load drifts over all of them alike.
Reported: each command's median wall time and its ratio to an empty interpreter and to ``import torch``
(the floor of anything that touches a model). Issue 22 asks ``import goat`` under 1.5 s and
``python -m goat.train glue --help`` in about 2 s. The help is timed twice: its first call, which
builds the text (each round in a fresh home folder, so an empty help cache), and a later call, which
reads it back from ``~/.cache/goat/help`` (a home folder whose cache was filled before the rounds).

    python benchmarks/import_time.py                 # 5 rounds
    python benchmarks/import_time.py --rounds 1      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

COMMANDS = {
    "python (empty)": ["-c", "pass"],
    "import torch": ["-c", "import torch"],
    "import goat": ["-c", "import goat"],
    "goat.get_goat_model (goat method)": [
        "-c",
        "import torch, goat; goat.get_goat_model(torch.nn.Sequential(torch.nn.Linear(8, 8)), "
        "goat.GoatConfig(r=4, num_experts=2, top_k=1, target_modules=['0']))",
    ],
    "python -m goat.train glue --help (first call)": ["-m", "goat.train", "glue", "--help"],
    "python -m goat.train glue --help (stored)": ["-m", "goat.train", "glue", "--help"],
}
STORED_HELP = "python -m goat.train glue --help (stored)"
FIRST_HELP = "python -m goat.train glue --help (first call)"


@dataclass(frozen=True)
class Row:
    command: str
    median_s: float
    ratio_to_torch: float
    seconds: list[float]


def time_once(arguments: list[str], home: str | None = None) -> float:
    environment = {**os.environ, "HOME": home} if home else None
    start = time.perf_counter()
    subprocess.run([sys.executable, *arguments], check=True, capture_output=True, env=environment)
    return time.perf_counter() - start


def measure(rounds: int) -> list[Row]:
    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as homes:
        stored_home = os.path.join(homes, "stored")
        time_once(COMMANDS[STORED_HELP], home=stored_home)  # fills its help cache
        for round_index in range(rounds):
            order = list(COMMANDS) if round_index % 2 == 0 else list(reversed(COMMANDS))
            for name in order:
                home = {STORED_HELP: stored_home, FIRST_HELP: os.path.join(homes, f"first-{round_index}")}.get(name)
                seconds[name].append(time_once(COMMANDS[name], home=home))
    torch_median = statistics.median(seconds["import torch"])
    return [
        Row(name, statistics.median(values), statistics.median(values) / torch_median, values)
        for name, values in seconds.items()
    ]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved repetitions of every command.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    args = parser.parse_args(argv)
    rows = measure(args.rounds)
    print(f"| command | median (s) | × import torch |  ({args.rounds} rounds, {time.strftime('%Y-%m-%d')})")
    print("|---|---|---|")
    for row in rows:
        print(f"| `{row.command}` | {row.median_s:.2f} | {row.ratio_to_torch:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "rows": [asdict(r) for r in rows]}, indent=2))
    return rows


if __name__ == "__main__":
    main()
