"""Append-only results files: one row per (run, epoch) in ``<dir>/<family>/results.{csv,jsonl}``.

Writers take an exclusive ``flock`` on a lock file and append whole lines with a single
``write`` + ``fsync``, so concurrent runs never interleave, duplicate or truncate rows.
Within a distributed run only the main process writes (the trainer checks that).

Every row carries the run's ``config_hash`` (every setting that can change the result, except the
seed: runs with equal hashes are seeds of one configuration) and a ``status`` (``complete``,
``incomplete``, ``pending``, ``diverged``; see :class:`goat.train.trainer.EpochEvaluation`), so
``goat.report`` averages only finished runs of one configuration over distinct seeds.
JSONL is the file of record; the CSV mirrors it for spreadsheets.
"""

from __future__ import annotations

import csv
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import subprocess
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

logger = logging.getLogger(__name__)

COLUMNS = (
    "time",
    "family",
    "task",
    "method",
    "model_name_or_path",
    "seed",
    "epoch",
    "metric",
    "value",
    "status",
    "config_hash",
    "params_pct",
    "trainable_params",
    "run_name",
    "run_id",
    "git_hash",
    "smoke",
    "metrics",
    "hparams",
)
STATUSES = ("complete", "incomplete", "pending", "diverged")

# Settings that cannot change a run's numbers: where files go, how progress is reported and saved,
# how the global batch is split over devices and accumulation steps (the effective global batch is
# hashed instead), and how the run is launched. Every other setting enters the config hash.
NOT_HASHED = frozenset(
    {
        "seed",
        "data_seed",
        "output_dir",
        "results_dir",
        "report_to",
        "project",
        "run_name",
        "logging_steps",
        "logging_strategy",
        "logging_first_step",
        "disable_tqdm",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "save_adapter",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "resume_from_checkpoint",
        "overwrite_output_dir",
        "study",
        "svd_cache",
        "svd_cache_dir",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "per_device_eval_batch_size",
        "deepspeed",
        "gradient_checkpointing",
        "attn_implementation",
        "use_cpu",
    }
)


def config_hash(hparams: dict[str, Any]) -> str:
    """Short hash of every setting in ``hparams`` outside :data:`NOT_HASHED` (so: all but the seed that matter)."""
    kept = {k: v for k, v in hparams.items() if k not in NOT_HASHED}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class ResultRow:
    """One evaluation of one run after one epoch."""

    family: str
    task: str
    method: str
    model_name_or_path: str
    seed: int
    epoch: float
    metric: str
    value: float
    params_pct: float
    trainable_params: int
    run_name: str
    run_id: str
    time: str
    status: str = "complete"
    config_hash: str = ""
    git_hash: str = field(default_factory=lambda: git_hash())
    smoke: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}.")
        if not self.config_hash:
            self.config_hash = config_hash(self.hparams)


@functools.cache
def git_hash() -> str:
    """Short hash of the checked-out code ('unknown' outside a git checkout); '+dirty' if modified.

    Read once per process, at the first call (a run's start event), so every row of a run names the
    code the process imported, not a commit made while it trained."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
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


def append_result(root: str | Path, row: ResultRow, *, once_per_epoch: bool = False) -> bool:
    """Append ``row`` to ``<root>/<family>/results.csv`` and ``results.jsonl`` atomically.

    ``once_per_epoch``: skip the row when one of the same run and epoch is already there (a resumed
    run repeating an epoch). Returns whether the row was written.
    """
    directory = results_dir(root, row.family)
    record = asdict(row)
    with _locked(directory):
        if once_per_epoch and any(
            r.get("run_id") == row.run_id and r.get("epoch") == row.epoch for r in read_results(root, row.family)
        ):
            return False
        csv_path = directory / "results.csv"
        columns = _csv_header(csv_path)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns or COLUMNS, lineterminator="\n", extrasaction="ignore")
        if not columns:
            writer.writeheader()
        writer.writerow({k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in record.items()})
        _append(csv_path, buffer.getvalue())
        _append(directory / "results.jsonl", json.dumps(record, sort_keys=True) + "\n")
    return True


def _csv_header(path: Path) -> list[str] | None:
    """The CSV's existing columns (None for a new file). An older header keeps its columns; JSONL has every field."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), None)
    if header and list(header) != list(COLUMNS):
        logger.warning(
            "%s has older columns; new fields are in results.jsonl only (start a new results folder for both).", path
        )
    return header or None


def read_results(root: str | Path, family: str) -> list[dict[str, Any]]:
    """All rows of a family (from the JSONL file)."""
    return read_jsonl(results_dir(root, family) / "results.jsonl")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (none if it does not exist); a torn last line from a killed writer is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
