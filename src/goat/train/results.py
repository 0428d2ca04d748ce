"""Append-only results files: one row per (run, epoch) in ``<dir>/<family>/results.{csv,jsonl}``.

Writers take an exclusive ``flock`` on a lock file and append whole lines with a single
``write`` + ``fsync``, so concurrent runs never interleave, duplicate or truncate rows.
Within a distributed run only the main process writes (the trainer checks that).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import subprocess
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

COLUMNS = (
    "time", "family", "task", "method", "model", "seed", "epoch", "metric", "value",
    "params_pct", "trainable_params", "run_name", "run_id", "git_hash", "smoke", "metrics", "hparams",
)  # fmt: skip


@dataclass
class ResultRow:
    """One evaluation of one run after one epoch."""

    family: str
    task: str
    method: str
    model: str
    seed: int
    epoch: float
    metric: str
    value: float
    params_pct: float
    trainable_params: int
    run_name: str
    run_id: str
    time: str
    git_hash: str = field(default_factory=lambda: git_hash())
    smoke: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)


def git_hash() -> str:
    """Short hash of the checked-out code ('unknown' outside a git checkout); '+dirty' if modified."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".results.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _append(path: Path, text: str) -> None:
    """Append whole lines; a torn last line left by a killed foreign writer is closed first."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            text = "\n" + text
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def results_dir(root: str | Path, family: str) -> Path:
    return Path(root) / family


def append_result(root: str | Path, row: ResultRow) -> None:
    """Append ``row`` to ``<root>/<family>/results.csv`` and ``results.jsonl`` atomically."""
    directory = results_dir(root, row.family)
    record = asdict(row)
    with _locked(directory):
        csv_path = directory / "results.csv"
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        if not csv_path.exists() or csv_path.stat().st_size == 0:
            writer.writeheader()
        writer.writerow({k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in record.items()})
        _append(csv_path, buffer.getvalue())
        _append(directory / "results.jsonl", json.dumps(record, sort_keys=True) + "\n")


def read_results(root: str | Path, family: str) -> list[dict[str, Any]]:
    """All rows of a family (from the JSONL file); a torn last line from a killed writer is skipped."""
    path = results_dir(root, family) / "results.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
