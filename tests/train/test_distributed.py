"""2-process torchrun (gloo, CPU), plain DDP and DeepSpeed ZeRO-2, matches one process on the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("dist_train.py")
ZERO2 = Path(__file__).resolve().parents[2] / "configs" / "deepspeed" / "zero2.json"


def _run(tmp_path: Path, name: str, per_device: int, processes: int, deepspeed: Path | None = None) -> list[float]:
    out = tmp_path / f"{name}.json"
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}", "--standalone"] if processes > 1 else [sys.executable]
    cmd = [*launcher, str(SCRIPT), str(out), str(per_device)] + ([str(deepspeed)] if deepspeed else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # Own process group: on a timeout, torchrun's workers are killed too instead of lingering.
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                               start_new_session=True)  # fmt: skip
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"{' '.join(cmd)} did not finish in 300 s")
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(out.read_text())["losses"]


@pytest.fixture(scope="module")
def single_process_losses(tmp_path_factory) -> list[float]:
    return _run(tmp_path_factory.mktemp("single"), "single", per_device=4, processes=1)


@pytest.mark.parametrize("deepspeed", [None, ZERO2], ids=["ddp", "deepspeed-zero2"])
def test_two_processes_match_one(tmp_path, single_process_losses, deepspeed):
    losses = _run(tmp_path, "dist", per_device=2, processes=2, deepspeed=deepspeed)
    assert len(losses) == len(single_process_losses) == 4
    assert losses == pytest.approx(single_process_losses, abs=1e-5)
