"""One run's folder: its attempts log, checkpoints and exported adapters, and the resume decision.

``<output_dir>/<family>/<run_name>/`` holds

* ``attempts.jsonl``: a ``start`` line when an attempt begins (run id, checkpoint resumed from, git
  hash, command line, config hash) and an ``end`` line when it stops (``complete``, ``diverged`` or
  ``failed``). A start without an end is an attempt that was killed.
* ``checkpoint-<step>/``: Trainer checkpoints at the end of every epoch (``adapter/``, optimiser,
  scheduler, RNG and trainer state, ``epoch_history.json`` written last). Trainer keeps the newest
  and the best (``save_total_limit``).
* ``adapter/``: the best epoch's adapter (the epoch goat.report reports); ``adapter-last/``: the
  last epoch's; ``summary.json``; ``routing_epoch<N>.json``; task outputs (generations, ...).

An attempt either continues the newest complete checkpoint (``resume``, same run id, same
configuration) or starts fresh in an empty folder: the files of two attempts are never mixed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goat.train.results import NOT_HASHED, git_hash, read_jsonl
from goat.train.trainer import CHECKPOINT_ADAPTER, HISTORY_NAME

logger = logging.getLogger(__name__)

ATTEMPTS_NAME = "attempts.jsonl"
BEST_ADAPTER = "adapter"
LAST_ADAPTER = "adapter-last"
CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)")


class RunAlreadyComplete(Exception):
    """``resume`` of a run whose last attempt completed: nothing to do; ``summary`` is its summary.json."""

    def __init__(self, folder: Path, summary: dict[str, Any] | None):
        super().__init__(f"{folder} is already complete; nothing to resume.")
        self.folder = folder
        self.summary = summary


@dataclass(frozen=True)
class Attempt:
    """This process's attempt at a run: its number, the run id its results rows carry, where it resumes."""

    number: int
    run_id: str
    resume_from: Path | None


class RunFolder:
    """The folder of one run (see the module docstring); only the main process writes to it."""

    def __init__(self, path: str | Path, *, main_process: bool = True):
        self.path = Path(path)
        self.main_process = main_process

    # ------------------------------------------------------------------ reading
    def events(self) -> list[dict[str, Any]]:
        """Lines of the attempts log (a torn last line from a killed writer is skipped)."""
        return read_jsonl(self.path / ATTEMPTS_NAME)

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints (their ``epoch_history.json`` exists), oldest first."""
        found = []
        for child in self.path.glob("checkpoint-*"):
            match = CHECKPOINT_PATTERN.fullmatch(child.name)
            if match and (child / HISTORY_NAME).is_file() and (child / CHECKPOINT_ADAPTER).is_dir():
                found.append((int(match.group(1)), child))
        return [path for _, path in sorted(found)]

    def summary(self) -> dict[str, Any] | None:
        path = self.path / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def _last_start(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The newest ``start`` event and its ``end`` event (None if that attempt never ended)."""
        events = self.events()
        starts = [e for e in events if e.get("event") == "start"]
        if not starts:
            return None, None
        start = starts[-1]
        ends = [e for e in events if e.get("event") == "end" and e.get("attempt") == start["attempt"]]
        return start, (ends[-1] if ends else None)

    def _checkpoint_to_resume(self, resume: str) -> Path | None:
        """``last``: the newest complete checkpoint (None if there is none); else the named one, which must be complete."""
        checkpoints = self.checkpoints()
        if resume == "last":
            return checkpoints[-1] if checkpoints else None
        wanted = Path(resume).resolve()
        for checkpoint in checkpoints:
            if checkpoint.resolve() == wanted:
                return checkpoint
        names = ", ".join(c.name for c in checkpoints) or "none"
        raise ValueError(
            f"--resume_from_checkpoint {resume}: not a complete checkpoint of {self.path} (it has: {names})."
        )

    def _holds_earlier_attempt(self) -> bool:
        return self.path.is_dir() and any(child.name != ATTEMPTS_NAME for child in self.path.iterdir())

    # ------------------------------------------------------------------ attempts
    def begin(
        self, *, resume: str | None, overwrite: bool, run_name: str, config_hash: str, hparams: dict[str, Any]
    ) -> Attempt:
        """Decide how this attempt starts and log it; raises ``ValueError`` (one line) when it cannot.

        * ``resume`` = ``"last"``: continue the newest complete checkpoint, or start fresh with a notice
          when there is none; ``resume`` = a checkpoint path of this folder: continue that one. A run
          that completed raises :class:`RunAlreadyComplete`, one that diverged an error.
        * otherwise: start fresh; a folder holding an earlier attempt is an error unless ``overwrite``,
          which deletes its files (its results rows stay in the results files, under their own run id).
        """
        if resume and overwrite:
            raise ValueError(
                "--resume_from_checkpoint continues a run and --overwrite_output_dir starts it over; pass one of them."
            )
        start, end = self._last_start()
        resume_from = None
        run_id = None
        if resume and start is not None and end is not None and end.get("status") == "complete":
            raise RunAlreadyComplete(self.path, self.summary())
        if resume and start is not None and end is not None and end.get("status") == "diverged":
            raise ValueError(
                f"{self.path} diverged ({end.get('error', '')}); a new learning rate is a new run (its own name), "
                "or pass --overwrite_output_dir to start this one over."
            )
        if resume:
            checkpoint = self._checkpoint_to_resume(resume)
            if checkpoint is not None and start is not None:
                _check_same_configuration(self.path, start, config_hash, hparams)
                resume_from, run_id = checkpoint, start["run_id"]
                logger.warning("resuming %s from %s", run_name, resume_from.name)
            else:
                logger.warning("--resume_from_checkpoint: no checkpoint in %s; starting fresh.", self.path)
        if resume_from is None and self._holds_earlier_attempt() and not (overwrite or resume):
            raise ValueError(
                f"{self.path} holds an earlier attempt of this run (see {ATTEMPTS_NAME}); pass --resume_from_checkpoint "
                "(or --resume) to continue it, or --overwrite_output_dir to start it over."
            )
        number = 1 + max((e.get("attempt", 0) for e in self.events()), default=0)
        attempt = Attempt(
            number, run_id or f"{run_name}@{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}", resume_from
        )
        if self.main_process:
            self.path.mkdir(parents=True, exist_ok=True)
            self.path.chmod(0o700)  # private: generations and sandbox details are for the owner only
            removed = self._remove_partial_checkpoints() if resume_from else self._clear()
            self._log(
                {
                    "event": "start",
                    "attempt": number,
                    "run_id": attempt.run_id,
                    "resumed_from": resume_from.name if resume_from else None,
                    "removed": removed,
                    "config_hash": config_hash,
                    "hparams": hparams,
                    "git_hash": git_hash(),
                    "host": socket.gethostname(),
                    "world_size": int(os.environ.get("WORLD_SIZE", "1")),
                    "argv": sys.argv,
                }
            )
        return attempt

    def end(self, attempt: Attempt, status: str, **details: Any) -> None:
        """Log how ``attempt`` stopped: complete, diverged or failed."""
        if self.main_process:
            self._log({"event": "end", "attempt": attempt.number, "status": status, **details})

    def _log(self, event: dict[str, Any]) -> None:
        event = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **event}
        with open(self.path / ATTEMPTS_NAME, "a") as handle:
            handle.write(json.dumps(event, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _clear(self) -> list[str]:
        """Delete an earlier attempt's files (the attempts log stays); return their names."""
        removed = sorted(child.name for child in self.path.iterdir() if child.name != ATTEMPTS_NAME)
        for name in removed:
            _remove(self.path / name)
        return removed

    def _remove_partial_checkpoints(self) -> list[str]:
        """Checkpoints a killed save left unfinished."""
        complete = {path.name for path in self.checkpoints()}
        partial = sorted(p.name for p in self.path.glob("checkpoint-*") if p.name not in complete)
        for name in partial:
            _remove(self.path / name)
        return partial

    # ------------------------------------------------------------------ adapters
    def export_best(self, best_checkpoint: str | Path | None, best_is_last: bool) -> Path | None:
        """``adapter/`` := the best epoch's adapter, copied from its checkpoint (or from ``adapter-last/``).

        Returns the folder, or None (with a warning) when the best epoch's adapter was not kept.
        """
        if not self.main_process:
            return None
        if best_checkpoint is not None and (Path(best_checkpoint) / CHECKPOINT_ADAPTER).is_dir():
            source = Path(best_checkpoint) / CHECKPOINT_ADAPTER
        elif best_is_last and (self.path / LAST_ADAPTER).is_dir():
            source = self.path / LAST_ADAPTER
        else:
            logger.warning(
                "the best epoch's adapter was not kept (no checkpoint of it); only %s/ was saved.", LAST_ADAPTER
            )
            return None
        target = self.path / BEST_ADAPTER
        staging = self.path / f".{BEST_ADAPTER}.partial"
        _remove(staging)
        shutil.copytree(source, staging)
        _remove(target)
        staging.rename(target)
        return target


def _check_same_configuration(folder: Path, start: dict[str, Any], config_hash: str, hparams: dict[str, Any]) -> None:
    if start.get("config_hash") == config_hash:
        return
    before = start.get("hparams") or {}
    changed = sorted(k for k in set(before) | set(hparams) if k not in NOT_HASHED and before.get(k) != hparams.get(k))
    shown = ", ".join(f"{k}: {before.get(k)!r} -> {hparams.get(k)!r}" for k in changed[:4])
    raise ValueError(
        f"--resume_from_checkpoint: {folder} was trained with other settings ({shown}); resume with the original settings, "
        "or give this configuration its own --run_name."
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
