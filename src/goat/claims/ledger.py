"""Configurations, their run settings, and the ledger's record of finished runs (what makes it resumable).

A :class:`Config` is one training run of a claim in the ledger's own vocabulary. :func:`run_settings`
is the one place that turns it into the training entrypoint's run settings; every run goes through
the ordinary training path (:func:`goat.studies.common.execute_one`, i.e. ``goat.train.runner``)
with the family YAML's defaults beneath. Each finished run appends one JSON line to
``<out>/claims/runs.jsonl``; a configuration found there is never trained again, so an interrupted
ledger resumes where it stopped. A run that diverges (:class:`goat.train.trainer.DivergenceError`)
is recorded as diverged, with no number, and the ledger goes on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from goat.studies import common
from goat.train.results import read_jsonl
from goat.train.trainer import DivergenceError, load_summary

logger = logging.getLogger(__name__)

OK = "ok"
DIVERGED = "diverged"


@dataclass(frozen=True)
class Config:
    """One training run of a claim. α is always 2r (the paper's ratio, Table 10)."""

    family: str
    task: str
    method: str
    lr: float
    seed: int
    rank: int = 8
    experts: int = 8
    top_k: int = 2
    scaling: str | None = None  # None: the method's own rule (goat's is Theorem 3.5, "theory"); or alpha, rs, ...
    init: str = "spread"
    aux_loss_coef: float = 1e-3
    train_samples: int = 1000
    eval_samples: int = 1000

    def key(self) -> str:
        """Identity of the run in the record file."""
        return json.dumps(asdict(self), sort_keys=True)

    def label(self) -> str:
        """Folder-safe name, unique per configuration apart from the seed."""
        return (
            f"{self.method}-{self.scaling or 'default'}-{self.init}-r{self.rank}e{self.experts}k{self.top_k}"
            f"-aux{self.aux_loss_coef:g}-lr{self.lr:g}-n{self.train_samples}"
        )


def run_settings(config: Config) -> dict[str, Any]:
    """The run settings (``python -m goat.train`` setting names) of ``config``: the ONE place the ledger names them."""
    return {
        "method": config.method,
        "learning_rate": config.lr,
        "r": config.rank,
        "lora_alpha": 2.0 * config.rank,
        "num_experts": config.experts,
        "top_k": config.top_k,
        "scaling": config.scaling,
        "init": config.init,
        "aux_loss_coef": config.aux_loss_coef,
        "max_train_samples": config.train_samples,
        "max_eval_samples": config.eval_samples,
        "report_to": ["none"],
    }


@dataclass(frozen=True)
class Record:
    """A finished run: ``value`` is the best-epoch primary metric × 100, None when it diverged."""

    config: Config
    status: str
    value: float | None
    seconds: float
    load_cv: float | None = None  # mean over MoE layers of the expert-load coefficient of variation (eval set)

    def line(self) -> str:
        return json.dumps({**asdict(self), "key": self.config.key()})


def read_records(path: Path) -> dict[str, Record]:
    """The record file as key -> Record (a missing file is an empty ledger)."""
    records: dict[str, Record] = {}
    for data in read_jsonl(path):  # a torn last line from a killed ledger is skipped (that run is trained again)
        data.pop("key")
        config = Config(**data.pop("config"))
        records[config.key()] = Record(config=config, **data)
    return records


class Ledger:
    """Runs configurations once each, remembering results in ``record_file``.

    ``dry_run``: plan only; :meth:`get` counts what would be trained and returns None.
    """

    def __init__(self, record_file: Path, results_dir: Path, output_dir: Path, *, smoke: bool, dry_run: bool = False):
        self.record_file = record_file
        self.records = read_records(record_file)
        self.settings = common.StudySettings(
            name="claims", smoke=smoke, targets=[], seeds=[], base={}, fixed=[],
            results_dir=results_dir, output_dir=output_dir, out=record_file.parent,
        )  # fmt: skip
        self.dry_run = dry_run
        self.planned: dict[str, Config] = {}

    def get(self, config: Config) -> Record | None:
        """The record of ``config``, training it first if the ledger has none."""
        key = config.key()
        if key in self.records:
            return self.records[key]
        if self.dry_run:
            self.planned[key] = config
            return None
        record = self._train(config)
        self.records[key] = record
        self.record_file.parent.mkdir(parents=True, exist_ok=True)
        with self.record_file.open("a") as handle:
            handle.write(record.line() + "\n")
        return record

    def values(self, configs: Iterable[Config]) -> dict[int, float | None]:
        """seed -> value (None: diverged or not run yet) of configurations differing only in seed."""
        out: dict[int, float | None] = {}
        for config in configs:
            record = self.get(config)
            out[config.seed] = record.value if record else None
        return out

    def _train(self, config: Config) -> Record:
        run = common.Run(config.label(), common.Target(config.family, config.task), config.seed, run_settings(config))
        started = time.time()
        try:
            result = common.execute_one(self.settings, run)  # the SVD cache is on by default: SVDs are computed once
        except DivergenceError as error:
            logger.warning("%s seed %d diverged: %s", config.label(), config.seed, error)
            return Record(config, DIVERGED, None, round(time.time() - started, 1))
        return Record(config, OK, result.value, round(time.time() - started, 1), expert_load_cv(result.run_dir))


def expert_load_cv(run_dir: Path) -> float | None:
    """Expert-load coefficient of variation of the last evaluated epoch (None for a single adapter)."""
    files = sorted(run_dir.glob("routing_epoch*.json"), key=lambda p: int(p.stem.removeprefix("routing_epoch")))
    if not files:
        return None
    return load_summary(json.loads(files[-1].read_text())).get("expert_load_cv")


def with_seeds(config: Config, seeds: Iterable[int]) -> list[Config]:
    """``config`` once per seed."""
    return [replace(config, seed=seed) for seed in seeds]
