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
SWEEP_VARIABLES = ("METHOD", "TASKS", "SEEDS", "OUTPUT_DIR", "RESULTS_DIR")


@pytest.fixture
def recorders(tmp_path) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("python", "torchrun"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in (*SWEEP_VARIABLES, "GPUS", "NNODES", "DEEPSPEED")}
    return {**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def _run(script: str, env: dict[str, str], *args: str) -> list[str]:
    subprocess.run(["bash", str(ROOT / script), *args], env=env, check=True, capture_output=True, text=True)
    return (Path(env["PATH"].split(":")[0]).parent / "calls.log").read_text().splitlines()


@pytest.mark.parametrize(("script", "family"), DRIVERS.items())
def test_driver_passes_only_its_sweep_variables_then_reports(recorders, script, family):
    env, _ = recorders
    calls = _run(script, env)
    first = calls[0]
    assert first.startswith(f"python -m goat.train {family} --task ") and "--deepspeed" not in first
    assert first.endswith("--method goat --seed 0 --output_dir outputs --results_dir results")  # nothing else: YAML rules
    if family != "chat":  # chat ends by printing how to run the MT-Bench judge instead
        assert calls[-1] == f"python -m goat.report --family {family} --results_dir results"


@pytest.mark.parametrize("script", DRIVERS)
def test_environment_overrides_and_flags_pass_through(recorders, script):
    env, _ = recorders
    env = {**env, "METHOD": "lora", "SEEDS": "3 4", "TASKS": "rte", "OUTPUT_DIR": "o", "RESULTS_DIR": "r"}
    calls = [c for c in _run(script, env, "--learning_rate", "5e-4", "--resume") if "goat.train" in c]
    assert len(calls) == 2  # one task x two seeds
    for call, seed in zip(calls, ("3", "4")):
        assert f"--task rte --method lora --seed {seed} --output_dir o --results_dir r --learning_rate 5e-4 --resume" in call


def test_launcher_single_node_multi_gpu_and_multi_node(recorders):
    env, log = recorders

    def launch(**variables: str) -> str:
        log.unlink(missing_ok=True)
        subprocess.run(["bash", "-c", "source scripts/launch.sh && goat_train glue --task rte --seed 1"],
                       env={**env, **variables}, check=True, cwd=ROOT)  # fmt: skip
        return log.read_text().strip()

    assert launch() == "python -m goat.train glue --task rte --seed 1"
    assert launch(GPUS="2") == (
        "torchrun --standalone --nproc-per-node=2 -m goat.train glue --deepspeed zero2 --task rte --seed 1"
    )
    assert launch(GPUS="8", NNODES="2", NODE_RANK="1", MASTER_ADDR="node0", MASTER_PORT="29600", DEEPSPEED="zero3") == (
        "torchrun --nnodes=2 --node-rank=1 --master-addr=node0 --master-port=29600 --nproc-per-node=8 "
        "-m goat.train glue --deepspeed zero3 --task rte --seed 1"
    )
