"""Configurations, their run settings, and the ledger's record of finished runs (what makes it resumable).

A :class:`Config` is one training run of the ledger. Its fields carry the training entrypoint's own
setting names (``learning_rate``, ``r``, ``num_experts``, ...), and :func:`run_settings` is the one
place that turns it into run settings: every run goes through the ordinary training path
(:func:`goat.studies.common.execute_one`, i.e. ``goat.train.runner``) with the family YAML's
defaults beneath. Each finished run appends one JSON line to ``<out>/claims/runs.jsonl``; a
configuration found there is never trained again, so an interrupted ledger resumes where it stopped.
A run that diverges (:class:`goat.train.trainer.DivergenceError`) is recorded as diverged, with no
number.

The ledger never trains inside a claim: :meth:`Ledger.get` returns the record or, when there is
none, notes the configuration as *requested*. ``python -m goat.claims`` then trains what was
requested (:mod:`goat.claims.executor`) and asks again, until no claim requests anything: a claim
that needs the outcome of a sweep (a tuned learning rate) requests its runs only once the sweep
is decided.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from goat.adapters.config import GoatConfig
from goat.train.results import read_jsonl

logger = logging.getLogger(__name__)

OK = "ok"
DIVERGED = "diverged"
LOGGING_STEPS = 5  # the training-loss curve (Fig. 4) is read at this step interval


@dataclass(frozen=True)
class Config:
    """One training run. α is always 2r (the paper's ratio, Table 10); names are the CLI's, and the adapter
    settings default to :class:`~goat.adapters.config.GoatConfig`'s (one default per setting)."""

    family: str
    task: str
    method: str
    learning_rate: float
    seed: int
    r: int = GoatConfig.r
    num_experts: int = GoatConfig.num_experts
    top_k: int = GoatConfig.top_k
    scaling: str | None = (
        GoatConfig.scaling
    )  # None: the method's own rule (goat's is Theorem 3.5, "theory"); or alpha, rs, ...
    init: str = GoatConfig.init
    aux_loss_coef: float = GoatConfig.aux_loss_coef
    max_train_samples: int = 2000
    num_train_epochs: float = 1.0
    max_eval_samples: int = 1000
    bf16: bool = False

    def key(self) -> str:
        """Identity of the run in the record file."""
        return json.dumps(asdict(self), sort_keys=True)

    def label(self) -> str:
        """Folder-safe name, unique per configuration apart from the seed."""
        return (
            f"{self.task}-{self.method}-{self.scaling or 'default'}-{self.init}-r{self.r}e{self.num_experts}k{self.top_k}"
            f"-aux{self.aux_loss_coef:g}-lr{self.learning_rate:g}-n{self.max_train_samples}x{self.num_train_epochs:g}"
        )


def run_settings(config: Config) -> dict[str, Any]:
    """The run settings (``python -m goat.train`` setting names) of ``config``: the ONE place the ledger names them."""
    settings = {
        "method": config.method,
        "learning_rate": config.learning_rate,
        "r": config.r,
        "lora_alpha": 2.0 * config.r,
        "num_experts": config.num_experts,
        "top_k": config.top_k,
        "scaling": config.scaling,
        "init": config.init,
        "aux_loss_coef": config.aux_loss_coef,
        "max_train_samples": config.max_train_samples,
        "num_train_epochs": config.num_train_epochs,
        "max_eval_samples": config.max_eval_samples,
        "train_sampling_strategy": "group_by_length",  # batches of similar length: less padding, same examples
        # No zero-shot pass (the causal default's YAML asks for one): no verdict reads it, it cost a causal run
        # ~2 of its ~12 minutes, and it leaves the training trajectory bit-identical (test_causal_train.py).
        # The ledger's first 191 runs carry it; zero-shot scores per method are in their records.
        "eval_on_start": False,
        "logging_steps": LOGGING_STEPS,
        "report_to": ["none"],
    }
    if config.bf16:
        settings["bf16"] = True
    return settings


@dataclass(frozen=True)
class Record:
    """A finished run: ``value`` is the best-epoch primary metric × 100, None when it diverged."""

    config: Config
    status: str
    value: float | None
    seconds: float
    load_cv: float | None = None  # mean over MoE layers of the expert-load coefficient of variation (eval set)
    load_deviation: float | None = None  # largest |load − 1/E| over MoE layers and experts (eval set)
    losses: list[list[float]] = field(default_factory=list)  # [step, task loss] every LOGGING_STEPS steps
    zero_shot: float | None = None  # the metric × 100 before training, when evaluated

    def line(self) -> str:
        return json.dumps({**asdict(self), "key": self.config.key()})


def read_records(path: Path) -> dict[str, Record]:
    """The record file as key -> Record (a missing file is an empty ledger; a torn last line is skipped)."""
    records: dict[str, Record] = {}
    for data in read_jsonl(path):
        data.pop("key", None)
        config = Config(**data.pop("config"))
        records[config.key()] = Record(config=config, **data)
    return records


class Ledger:
    """The record file, and the configurations the claims asked for that it does not hold yet."""

    def __init__(self, record_file: Path):
        self.record_file = record_file
        self.records = read_records(record_file)
        self.requested: dict[str, Config] = {}

    def get(self, config: Config) -> Record | None:
        """The record of ``config``; None (and ``config`` noted as requested) when it has not run."""
        record = self.records.get(config.key())
        if record is None:
            self.requested[config.key()] = config
        return record

    def add(self, record: Record) -> None:
        """Keep ``record`` and append it to the record file (one line, so a kill loses at most that line)."""
        self.records[record.config.key()] = record
        self.requested.pop(record.config.key(), None)
        self.record_file.parent.mkdir(parents=True, exist_ok=True)
        with self.record_file.open("a") as handle:
            handle.write(record.line() + "\n")

    def values(self, configs: Iterable[Config]) -> dict[int, float | None]:
        """seed -> value of configurations differing only in seed (missing: not yet run; None: diverged)."""
        out: dict[int, float | None] = {}
        for config in configs:
            record = self.get(config)
            if record is not None:
                out[config.seed] = record.value
        return out


def with_seeds(config: Config, seeds: Iterable[int]) -> list[Config]:
    """``config`` once per seed."""
    return [replace(config, seed=seed) for seed in seeds]


# ------------------------------------------------------------------------------ training one run
def train(config: Config, results_dir: Path, output_dir: Path, *, smoke: bool) -> Record:
    """Train ``config`` through the ordinary training path and return its record (diverged: no number)."""
    from goat.studies import common
    from goat.train.trainer import DivergenceError

    settings = common.StudySettings(
        name="claims",
        smoke=smoke,
        targets=[],
        seeds=[],
        base={},
        fixed=[],
        results_dir=results_dir,
        output_dir=output_dir,
        out=results_dir,
    )
    run = common.Run(config.label(), common.Target(config.family, config.task), config.seed, run_settings(config))
    losses = LossLog()
    started = time.time()
    try:
        result = common.execute_one(settings, run, callbacks=[losses])
    except DivergenceError as error:
        logger.warning("%s seed %d diverged: %s", config.label(), config.seed, error)
        return Record(config, DIVERGED, None, round(time.time() - started, 1))
    routing = last_routing(result.run_dir)
    return Record(
        config,
        OK,
        result.value,
        round(time.time() - started, 1),
        routing.get("cv"),
        routing.get("deviation"),
        losses.curve,
        zero_shot(result.summary, result.metric),
    )


def last_routing(run_dir: Path) -> dict[str, float]:
    """Load CV and largest deviation from uniform of the last evaluated epoch (empty for a single adapter)."""
    files = sorted(run_dir.glob("routing_epoch*.json"), key=lambda p: int(p.stem.removeprefix("routing_epoch")))
    if not files:
        return {}
    loads = json.loads(files[-1].read_text())
    rows = [row for row in loads.values() if row and math.fsum(row) > 0]
    if not rows:
        return {}
    cvs, deviations = [], []
    for row in rows:
        mean = math.fsum(row) / len(row)
        sd = math.sqrt(math.fsum((x - mean) ** 2 for x in row) / (len(row) - 1)) if len(row) > 1 else 0.0
        cvs.append(sd / mean)
        deviations.append(max(abs(x / math.fsum(row) - 1 / len(row)) for x in row))
    return {"cv": round(math.fsum(cvs) / len(cvs), 5), "deviation": round(max(deviations), 5)}


class LossLog(TrainerCallback):
    """Trainer callback keeping ``[step, task loss]`` at every logging step (the curve of Fig. 4)."""

    def __init__(self) -> None:
        self.curve: list[list[float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "task_loss" in logs:
            self.curve.append([state.global_step, logs["task_loss"]])


def zero_shot(summary: dict[str, Any], metric: str) -> float | None:
    """The metric × 100 at epoch 0 (``--eval_on_start``), if the run evaluated before training."""
    for row in summary.get("history", []):
        if row.get("epoch") == 0 and metric in row:
            return 100.0 * row[metric]
    return None
