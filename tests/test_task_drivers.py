"""The task drivers (glue.sh, vit.sh, ...) and scripts/launch.sh: which command each one runs.

`python` and `torchrun` are replaced by recorders on PATH, so nothing trains.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = {"glue.sh": "glue", "vit.sh": "vision", "math.sh": "math", "code.sh": "code", "chat.sh": "chat",
           "commonsense.sh": "commonsense"}  # fmt: skip


@pytest.fixture
def recorders(tmp_path) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("python", "torchrun"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


@pytest.mark.parametrize(("script", "family"), DRIVERS.items())
def test_driver_trains_its_family_then_reports(recorders, script, family):
    env, log = recorders
    subprocess.run(["bash", str(ROOT / script)], env=env, check=True, capture_output=True, text=True)
    calls = log.read_text().splitlines()
    assert calls[0].startswith(f"python -m goat.train {family} --task ") and "--deepspeed" not in calls[0]
    assert "--method goat" in calls[0] and "--seed 0" in calls[0]
    if family != "chat":  # chat ends by printing how to run the MT-Bench judge instead
        assert calls[-1] == f"python -m goat.report --family {family} --results-dir results"


@pytest.mark.parametrize("gpus", [1, 2])
def test_launcher_uses_torchrun_and_deepspeed_only_for_several_gpus(recorders, gpus):
    env, log = recorders
    command = f'source scripts/launch.sh && goat_train {gpus} configs/deepspeed/zero2.json glue --task rte --seed 1'
    subprocess.run(["bash", "-c", command], env=env, check=True, cwd=ROOT)
    expected = (
        "python -m goat.train glue --task rte --seed 1"
        if gpus == 1
        else "torchrun --standalone --nproc-per-node=2 -m goat.train glue --task rte --seed 1 "
        "--deepspeed configs/deepspeed/zero2.json"
    )
    assert log.read_text().splitlines() == [expected]
