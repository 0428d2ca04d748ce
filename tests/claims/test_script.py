"""scripts/claims.sh makes one valid call of ``python -m goat.claims`` (full, smoke, plan)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from goat.claims.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, {"smoke": False, "plan": False}),
        ({"SMOKE": "1"}, {"smoke": True, "plan": False}),
        ({"PLAN": "1", "CLAIMS": "1 7"}, {"smoke": False, "plan": True, "claims": [1, 7]}),
    ],
)
def test_script_calls_the_ledger_with_valid_flags(env, expected, tmp_path):
    record = tmp_path / "argv.txt"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    fake.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if k not in ("SMOKE", "PLAN", "CLAIMS")}
    subprocess.run(["bash", str(ROOT / "scripts" / "claims.sh")], env={**clean, "PYTHON": str(fake), **env}, check=True)
    argv = record.read_text().splitlines()
    assert argv[:2] == ["-m", "goat.claims"]
    ns = build_parser().parse_args(argv[2:])
    assert {k: getattr(ns, k) for k in ("smoke", "plan", "claims")} == {"claims": list(range(0, 9)), **expected}
    assert ns.workers == 2
