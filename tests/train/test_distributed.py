"""2-process torchrun (gloo, CPU), plain DDP and DeepSpeed ZeRO-2/3.

* Trained for a few steps, two processes match one on the same global batch, with the balance loss
  on: the logged loss, task loss and auxiliary loss agree whatever the world size and accumulation.
* Through the CLI, a run killed (SIGKILL of the whole launcher) after its first epoch's checkpoint
  and rerun with ``--resume`` ends with the same rows and adapter as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from goat.train.results import read_results

SCRIPT = Path(__file__).with_name("dist_train.py")
ZERO2 = Path(__file__).resolve().parents[2] / "src" / "goat" / "configs" / "deepspeed" / "zero2.json"


ZERO3 = ZERO2.with_name("zero3.json")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(
    tmp_path: Path, name: str, per_device: int, processes: int, deepspeed: Path | None = None, ga: int = 1
) -> dict:
    out = tmp_path / f"{name}.json"
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}", "--standalone"]
        if processes > 1
        else [sys.executable]
    )
    cmd = [*launcher, str(SCRIPT), str(out), str(per_device), str(ga)] + ([str(deepspeed)] if deepspeed else [])
    # Own process group: on a timeout, torchrun's workers are killed too instead of lingering.
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path, start_new_session=True
    )
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"{' '.join(cmd)} did not finish in 300 s")
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def single_process_logs(tmp_path_factory) -> dict:
    return _run(tmp_path_factory.mktemp("single"), "single", per_device=4, processes=1)


@pytest.mark.parametrize(
    ("deepspeed", "per_device", "ga"),
    [(None, 2, 1), (ZERO2, 2, 1), (None, 1, 2)],
    ids=["ddp", "deepspeed-zero2", "ddp-ga2"],
)
def test_two_processes_match_one(tmp_path, single_process_logs, deepspeed, per_device, ga):
    logs = _run(tmp_path, "dist", per_device=per_device, processes=2, deepspeed=deepspeed, ga=ga)
    for key in ("loss", "task_loss", "aux_loss"):
        assert len(logs[key]) == len(single_process_logs[key]) == 4
        assert logs[key] == pytest.approx(single_process_logs[key], rel=1e-5, abs=1e-6), key
    assert min(single_process_logs["aux_loss"]) > 0.01  # the balance loss is on and visible


def _cli(model_dir: Path, data_dir: Path, root: Path, deepspeed: Path | None, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        "--standalone",
        "-m",
        "goat.train",
        "glue",
        "--task",
        "rte",
        "--model_name_or_path",
        str(model_dir),
        "--data-dir",
        str(data_dir),
        "--method",
        "goat",
        "--num_experts",
        "4",
        "--num_train_epochs",
        "2",
        "--global_batch_size",
        "8",
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "12",
        "--warmup-steps",
        "1",
        "--learning_rate",
        "2e-3",
        "--report-to",
        "none",
        "--output-dir",
        str(root / "out"),
        "--results-dir",
        str(root / "res"),
        *(["--deepspeed", str(deepspeed)] if deepspeed else []),
        *extra,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True
    )


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _kill_tree(pid: int) -> None:
    for target in [pid, *_descendants(pid)]:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait(process: subprocess.Popen) -> None:
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("torchrun did not finish in 300 s")
    assert process.returncode == 0, stderr[-3000:]


@pytest.mark.parametrize("deepspeed", [None, ZERO2, ZERO3], ids=["ddp", "deepspeed-zero2", "deepspeed-zero3"])
def test_killed_and_resumed_under_torchrun_equals_uninterrupted(tiny_model_dir, rte_dir, tmp_path, deepspeed):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _wait(_cli(tiny_model_dir, rte_dir, whole, deepspeed))
    process = _cli(tiny_model_dir, rte_dir, killed, deepspeed)
    deadline = time.time() + 300
    while not list((killed / "out").glob("glue/*/checkpoint-*/epoch_history.json")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint after 300 s"
        time.sleep(0.02)
    _kill_tree(process.pid)  # the launcher and both workers (torchrun starts each worker in its own session)
    process.wait()
    _wait(_cli(tiny_model_dir, rte_dir, killed, deepspeed, "--resume"))

    reference, resumed = read_results(whole / "res", "glue"), read_results(killed / "res", "glue")
    assert [(r["epoch"], r["status"]) for r in resumed] == [(1.0, "incomplete"), (2.0, "complete")]
    assert [r["value"] for r in resumed] == [r["value"] for r in reference]
    (run_whole,), (run_killed,) = (whole / "out" / "glue").iterdir(), (killed / "out" / "glue").iterdir()
    events = [json.loads(line) for line in (run_killed / "attempts.jsonl").read_text().splitlines()]
    assert [(e["event"], e.get("resumed_from")) for e in events][1] == ("start", "checkpoint-6")
    expected = load_file(str(run_whole / "adapter-last" / "adapter_model.safetensors"))
    got = load_file(str(run_killed / "adapter-last" / "adapter_model.safetensors"))
    assert expected.keys() == got.keys()
    for key in expected:  # gloo on CPU is deterministic; DeepSpeed's fp32 master copies round-trip exactly
        torch.testing.assert_close(got[key], expected[key], rtol=1e-6, atol=1e-7, msg=key)
