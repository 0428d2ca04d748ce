"""What every study shares: one command-line shape, a grid of training runs, CSV output.

A study is a list of :class:`Run` (one configuration on one task with one seed). Each run goes
through the ordinary training path (``goat.train.settings.resolve`` then ``runner.prepare``/``train``)
with ``configs/<family>.yaml`` defaults, so its rows land in ``<results_dir>/<family>/results.*``
tagged ``study=<name>``. ``--smoke`` switches the defaults to the embedded default (packaged
MiniLM + tweet sentiment, small subsets, max_seq_length 32): a CPU check of the code path, not a
reproduction. Settings keep their one name (``r``, ``learning_rate``, ...; ``python -m goat.train
<family> --help``).
"""

from __future__ import annotations

import argparse
import csv
import gc
import logging
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from goat.adapters.model import GoatModel
from goat.studies.steps import StepRecorder
from goat.train import settings as run_settings
from goat.train.run_config import RunConfig
from goat.train.runner import prepare, train
from goat.train.settings import flag_names

logger = logging.getLogger(__name__)

SMOKE_FAMILY = "glue"
SMOKE_TASK = "tweet_sentiment"
SMOKE_MODEL = "embedded"
# Small enough that one run takes well under a minute on two idle CPU cores.
SMOKE_SETTINGS: dict[str, Any] = {
    "max_train_samples": 160,
    "max_eval_samples": 160,
    "max_seq_length": 32,
    "num_train_epochs": 1.0,
    "warmup_steps": 2,
    "report_to": ["none"],
}


@dataclass(frozen=True)
class Target:
    """A task of a family, written ``family:task`` on the command line."""

    family: str
    task: str

    def __str__(self) -> str:
        return f"{self.family}:{self.task}"


def parse_target(text: str, default_family: str) -> Target:
    """``task`` (in ``default_family``) or ``family:task``."""
    family, _, task = text.rpartition(":")
    if not task:
        raise ValueError(f"--tasks entry {text!r}: write task or family:task.")
    return Target(family or default_family, task)


@dataclass
class StudySettings:
    """Resolved command line of a study: where to run, what to vary, where to write."""

    name: str
    smoke: bool
    targets: list[Target]
    seeds: list[int]
    base: dict[str, Any]  # settings common to every run (smoke settings, model, data sizes)
    fixed: list[str]  # --set as command-line flags (every run gets them; a study must not also vary them)
    results_dir: Path
    output_dir: Path
    out: Path

    def pick(self, given: Any, full: Any, smoke: Any) -> Any:
        """An explicit flag wins; otherwise the smoke or the paper (full) default."""
        if given is not None:
            return given
        return smoke if self.smoke else full


@dataclass
class Run:
    """One configuration of a study on one task with one seed."""

    label: str  # unique within (study, task, seed); part of the run name
    target: Target
    seed: int
    overrides: dict[str, Any]  # settings this configuration sets
    columns: dict[str, Any] = field(default_factory=dict)  # what the CSV records about it


@dataclass
class RunResult:
    """A finished run: its best epoch (the paper reports the best epoch) and its records."""

    run: Run
    metric: str
    value: float  # best-epoch primary metric x 100
    summary: dict[str, Any]
    run_dir: Path
    min_dim: int  # smallest min(out, in) over the adapted layers (the SVD spectrum length h)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The run as one CSV row."""
        return {
            "task": self.run.target.task,
            "family": self.run.target.family,
            "seed": self.run.seed,
            **self.run.columns,
            "metric": self.metric,
            "value": round(self.value, 4),
            "best_epoch": self.summary["best_epoch"],
            "run_name": self.summary["run_name"],
        }


# ----------------------------------------------------------------------------- command line
def add_common_arguments(parser: argparse.ArgumentParser, *, family: str, tasks: Sequence[str]) -> None:
    """Flags every study has; ``family``/``tasks`` are the paper's (GPU) defaults."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"Embedded default ({SMOKE_MODEL} MiniLM, {SMOKE_FAMILY}:{SMOKE_TASK}, small subsets, small grid): a CPU check of the code path.",
    )
    parser.add_argument(
        "--family", default=None, help=f"Family of plain task names (default {family}; smoke: {SMOKE_FAMILY})."
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        help=f"Tasks as task or family:task (default: {' '.join(tasks)}; smoke: {SMOKE_TASK}).",
    )
    parser.add_argument(
        *flag_names("model_name_or_path"),
        default=None,
        help=f"Base model (default: the family YAML's; smoke: {SMOKE_MODEL}).",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Seeds; results are averaged over them.")
    parser.add_argument(
        *flag_names("max_train_samples"),
        type=int,
        default=None,
        help="Training examples per run (default: YAML / smoke 160).",
    )
    parser.add_argument(
        *flag_names("max_eval_samples"),
        type=int,
        default=None,
        help="Evaluation examples per split (default: YAML / smoke 160).",
    )
    parser.add_argument(
        *flag_names("max_seq_length"), type=int, default=None, help="Max tokens per example (default: YAML / smoke 32)."
    )
    parser.add_argument(
        *flag_names("num_train_epochs"), type=float, default=None, help="Epochs per run (default: YAML / smoke 1)."
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="SETTING=VALUE",
        dest="set_fields",
        help="Any other setting for every run (python -m goat.train <family> --help), e.g. bf16=true per_device_train_batch_size=16.",
    )
    parser.add_argument(
        *flag_names("results_dir"), default="results", help="Root of results/<family>/results.{csv,jsonl}."
    )
    parser.add_argument(
        *flag_names("output_dir"), default="outputs", help="Root of the run folders (summary, routing files)."
    )
    parser.add_argument(
        "--out", default=None, help="Folder for the study's PNG/CSV (default <results-dir>/studies/<name>[-smoke])."
    )


def set_flags(items: Sequence[str]) -> list[str]:
    """``--set name=value ...`` as command-line flags ``--name value`` (the settings parser types them)."""
    flags = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: write SETTING=VALUE.")
        if key in ("task", "seed"):
            raise ValueError(f"--set {key}=...: a study sets {key} itself; use --tasks / --seeds.")
        flags += [f"--{key}", *value.split(",")]
    return flags


def resolve(ns: argparse.Namespace, name: str, *, family: str, tasks: Sequence[str]) -> StudySettings:
    """Settings from the parsed common flags (explicit flag > smoke default > paper default)."""
    smoke = bool(ns.smoke)
    default_family = ns.family or (SMOKE_FAMILY if smoke else family)
    task_names = ns.tasks or ([SMOKE_TASK] if smoke else list(tasks))
    base: dict[str, Any] = dict(SMOKE_SETTINGS) if smoke else {}
    model = ns.model_name_or_path or (SMOKE_MODEL if smoke else None)
    explicit = {
        "model_name_or_path": model,
        "max_train_samples": ns.max_train_samples,
        "max_eval_samples": ns.max_eval_samples,
        "max_seq_length": ns.max_seq_length,
        "num_train_epochs": ns.num_train_epochs,
    }
    base.update({k: v for k, v in explicit.items() if v is not None})
    fixed = set_flags(ns.set_fields)
    results_dir = Path(ns.results_dir)
    out = Path(ns.out) if ns.out else results_dir / "studies" / (f"{name}-smoke" if smoke else name)
    return StudySettings(
        name=name,
        smoke=smoke,
        targets=[parse_target(t, default_family) for t in task_names],
        seeds=list(ns.seeds),
        base=base,
        fixed=fixed,
        results_dir=results_dir,
        output_dir=Path(ns.output_dir),
        out=out,
    )


# ------------------------------------------------------------------------------------ runs
def slug(text: str) -> str:
    """A label made safe for folder names."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def run_config(settings: StudySettings, run: Run) -> RunConfig:
    """The run's settings: family YAML < smoke settings < common flags < the run's own settings < --set."""
    named = {flag[2:] for flag in settings.fixed if flag.startswith("--")}
    clash = sorted(named & set(run.overrides))
    if clash:
        raise ValueError(f"--set {', '.join(clash)}: study {settings.name!r} varies these itself; use its own flags.")
    target = run.target
    values = {
        **settings.base,
        **run.overrides,
        "task": target.task,
        "seed": run.seed,
        "run_name": f"{settings.name}-{slug(run.label)}-{slug(target.task)}-s{run.seed}",
        "study": settings.name,
        "save_adapter": False,
        "save_strategy": "no",
        "overwrite_output_dir": True,  # short runs, rerun whole
        "results_dir": str(settings.results_dir),
        "output_dir": str(settings.output_dir),
    }
    if settings.smoke:
        values["smoke"] = True
    return run_settings.resolve(target.family, settings.fixed, overrides=values)


def execute_one(settings: StudySettings, run: Run, *, callbacks: Sequence[Any] = ()) -> RunResult:
    """Train ``run`` (with extra Trainer callbacks) and return its best epoch; frees the model after."""
    logger.info("%s: %s on %s, seed %d", settings.name, run.label, run.target, run.seed)
    prepared = prepare(run_config(settings, run))
    for callback in callbacks:
        prepared.trainer.add_callback(callback)
    summary = train(prepared)
    metric = prepared.evaluation.primary_metric
    model = prepared.trainer.model
    layers = model.adapted_layers().values() if isinstance(model, GoatModel) else []
    min_dim = min((min(layer.out_features, layer.in_features) for layer in layers), default=0)
    result = RunResult(run, metric, 100.0 * summary["best"][metric], summary, prepared.output_dir, min_dim)
    del prepared, model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the next run of a long study builds a fresh model
    return result


def execute(settings: StudySettings, runs: Sequence[Run]) -> list[RunResult]:
    """Train every run in order, with a progress bar over runs."""
    return [execute_one(settings, run) for run in tqdm(runs, desc=settings.name, unit="run")]


def execute_recorded(
    settings: StudySettings, runs: Sequence[Run], *, equivalent_gradient: bool = False
) -> list[RunResult]:
    """Like :func:`execute`, keeping per-step records (loss; Lemma 2.2 norm if asked) in ``RunResult.steps``.

    The runs must set ``logging_steps=1``.
    """
    results = []
    for run in tqdm(runs, desc=settings.name, unit="run"):
        recorder = StepRecorder(equivalent_gradient=equivalent_gradient)
        result = execute_one(settings, run, callbacks=[recorder])
        result.steps = recorder.records
        results.append(result)
    return results


def expand(settings: StudySettings, configurations: Iterable[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[Run]:
    """Every (label, settings, CSV columns) on every target and seed."""
    configurations = list(configurations)
    return [
        Run(label, target, seed, dict(overrides), dict(columns))
        for target in settings.targets
        for seed in settings.seeds
        for label, overrides, columns in configurations
    ]


# --------------------------------------------------------------------------------- numbers
def mean_over(results: Iterable[RunResult], key: Callable[[RunResult], Any]) -> dict[Any, float]:
    """Mean value per key (e.g. per configuration and task, over seeds)."""
    groups: dict[Any, list[float]] = defaultdict(list)
    for result in results:
        groups[key(result)].append(result.value)
    return {k: statistics.mean(v) for k, v in groups.items()}


def average_over_tasks(results: Sequence[RunResult], config_key: Callable[[RunResult], Any]) -> dict[Any, float]:
    """Per configuration: mean over tasks of the mean over seeds (the paper's Avg. column)."""
    per_task = mean_over(results, lambda r: (config_key(r), str(r.run.target)))
    groups: dict[Any, list[float]] = defaultdict(list)
    for (config, _), value in per_task.items():
        groups[config].append(value)
    return {config: statistics.mean(values) for config, values in groups.items()}


def min_max(values: Sequence[float]) -> list[float]:
    """Min-max normalisation to [0, 1] (Fig. 1); all equal -> all 0.5."""
    low, high = min(values), max(values)
    if high == low:
        return [0.5 for _ in values]
    return [(v - low) / (high - low) for v in values]


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows (dicts) as CSV; the columns are the union of keys in first-seen order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats with two decimals, None as an en dash."""

    def cell(value: Any) -> str:
        if value is None:
            return "–"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def banner(settings: StudySettings, what: str, results: Sequence[RunResult]) -> str:
    """First line of a study's printout, flagging smoke runs (``--smoke`` or a smoke task such as digits)."""
    smoke = settings.smoke or any(r.summary.get("smoke") for r in results)
    note = " — SMOKE RUN of the code path, not a reproduction" if smoke else ""
    return f"{what}: {', '.join(map(str, settings.targets))}, seeds {settings.seeds}, metric x100{note}"


def configure_logging() -> None:
    """Warnings only: the progress bars carry the news."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
