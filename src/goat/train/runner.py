"""Run one fine-tuning job: decide the attempt, build the task bundle, train with GoatTrainer, evaluate every epoch."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from goat.train.arguments import GoatTrainingArguments
from goat.train.console import track_in_wandb
from goat.train.families import family_named
from goat.train.reporters import configure_reporter
from goat.train.results import config_hash
from goat.train.run_config import RunConfig
from goat.train.run_folder import LAST_ADAPTER, Attempt, RunAlreadyComplete, RunFolder
from goat.train.trainer import DivergenceError, EpochEvaluation, GoatTrainer

logger = logging.getLogger(__name__)


def run_settings(config: RunConfig) -> dict[str, Any]:
    """Every setting of the run, plus the effective global batch (what the config hash sees of the batch split)."""
    training = config.training
    world = int(os.environ.get("WORLD_SIZE", "1"))
    effective = training.per_device_train_batch_size * world * training.gradient_accumulation_steps
    return {**config.settings(), "global_batch_size": effective}


def _configuration_label(config: RunConfig) -> str:
    """``<task>-<method>-r<r>a<lora_alpha>[-e<E>k<k>]-lr<lr>``: what a reader needs to tell configurations apart."""
    adapter = config.adapter
    moe = f"-e{adapter.num_experts}k{adapter.top_k}" if adapter.is_moe else ""
    return f"{config.data.task}-{adapter.method}-r{adapter.r}a{adapter.lora_alpha:g}{moe}-lr{config.training.learning_rate:g}"


def default_run_name(config: RunConfig, settings_hash: str) -> str:
    """``<task>-<method>-r<r>a<lora_alpha>[-e<E>k<k>]-lr<lr>-s<seed>-<hash>``: one folder per configuration and seed."""
    return f"{_configuration_label(config)}-s{config.training.seed}-{settings_hash[:6]}"


def configuration_group(config: RunConfig, settings_hash: str) -> str:
    """The W&B group of a run: its run name without the seed, with the whole config hash (its seeds share it)."""
    return f"{_configuration_label(config)}-{settings_hash}"


def training_arguments(config: RunConfig, output_dir: Path, run_name: str) -> GoatTrainingArguments:
    """The Trainer's arguments for this run folder, with DeepSpeed (registered only now: see RunConfig)."""
    return dataclasses.replace(
        config.training,
        output_dir=str(output_dir),
        run_name=run_name,
        deepspeed=config.deepspeed,
        dataloader_pin_memory=config.training.dataloader_pin_memory
        and torch.cuda.is_available(),  # no-op (and a warning) on CPU
    )


@dataclass
class PreparedRun:
    """A run with its folder decided and its model, data and trainer built, ready to train."""

    config: RunConfig
    trainer: GoatTrainer
    evaluation: EpochEvaluation
    folder: RunFolder
    attempt: Attempt
    params_pct: float
    trainable_params: int

    @property
    def output_dir(self) -> Path:
        return self.folder.path


def prepare(config: RunConfig) -> PreparedRun:
    """Decide the attempt (fresh or resumed), load model and data, attach adapters, build the trainer.

    Settings were checked when ``config`` was resolved; the folders are checked first here, then
    names, paths and the offline hub while loading: everything a user can get wrong fails before
    training. Raises :class:`RunAlreadyComplete` for ``resume_from_checkpoint`` of a finished run.
    """
    training = config.training
    for flag, folder in (("--output_dir", training.output_dir), ("--results_dir", training.results_dir)):
        ensure_writable(Path(folder), flag)
    set_seed(training.seed)
    main_process = int(os.environ.get("RANK", "0")) == 0
    settings = run_settings(config)
    settings_hash = config_hash(settings)
    run_name = training.run_name or default_run_name(config, settings_hash)
    folder = RunFolder(Path(training.output_dir) / config.family / run_name, main_process=main_process)
    attempt = folder.begin(
        resume=training.resume_from_checkpoint,
        overwrite=training.overwrite_output_dir,
        run_name=run_name,
        config_hash=settings_hash,
        hparams=settings,
    )
    try:
        report_to = configure_reporter(
            training.report_to, project=training.project or f"goat-{config.family}", main_process=main_process
        )
        bundle = family_named(config.family).build(config)
        trainable, total = bundle.model.trainable_parameter_count()
        params_pct = round(100.0 * trainable / total, 4)
        logger.info("%s: %d trainable parameters (%.3f%% of %d)", config.adapter.method, trainable, params_pct, total)
        row_template = {
            "family": config.family,
            "task": config.data.task,
            "method": config.adapter.method,
            "model_name_or_path": config.data.model_name_or_path,
            "seed": training.seed,
            "params_pct": params_pct,
            "trainable_params": trainable,
            "run_name": run_name,
            "run_id": attempt.run_id,
            "config_hash": settings_hash,
            "smoke": training.smoke,
            "hparams": settings,
        }
        evaluation = EpochEvaluation(
            bundle.evaluate,
            bundle.primary_metric,
            row_template,
            training.results_dir,
            eval_on_start=training.eval_on_start,
        )
        # --eval_on_start is served by EpochEvaluation (an epoch-0 row); Trainer's own would need an eval_dataset
        arguments = dataclasses.replace(
            training_arguments(config, folder.path, run_name), report_to=report_to, eval_on_start=False
        )
        trainer = GoatTrainer(
            model=bundle.model,
            args=arguments,
            train_dataset=bundle.train_dataset,
            data_collator=bundle.data_collator,
            processing_class=bundle.processing_class,
            callbacks=[evaluation],
        )
        track_in_wandb(
            trainer.callback_handler.callbacks,
            {**settings, "config_hash": settings_hash},
            group=configuration_group(config, settings_hash),
            job_type=config.data.task,
            run_dir=folder.path,
        )
    except BaseException as error:
        folder.end(attempt, "failed", error=f"{type(error).__name__}: {error}")
        raise
    evaluation.trainer = trainer
    return PreparedRun(config, trainer, evaluation, folder, attempt, params_pct, trainable)


def ensure_writable(folder: Path, flag: str) -> None:
    """Create ``folder`` if needed and prove it writable, or raise a one-line ``ValueError``.

    Checked before anything loads, so a run never trains for an epoch before finding out it cannot
    write its results.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(
            f"{flag} {folder} is not a writable folder ({error.strerror or error}); choose another."
        ) from None


def train(prepared: PreparedRun) -> dict[str, Any]:
    """Train (or resume) with per-epoch evaluation and checkpoints; export the adapters; return ``summary.json``.

    A divergence writes a ``diverged`` results row, logs the attempt as diverged and re-raises
    :class:`DivergenceError`; no adapter is exported.
    """
    config, trainer, evaluation, folder, attempt = (
        prepared.config,
        prepared.trainer,
        prepared.evaluation,
        prepared.folder,
        prepared.attempt,
    )
    if attempt.resume_from is not None:
        evaluation.restore(attempt.resume_from)
    started = time.time()
    try:
        train_output = trainer.train(resume_from_checkpoint=str(attempt.resume_from) if attempt.resume_from else None)
        best = evaluation.best()
        if config.training.save_adapter:
            trainer.save_model(str(folder.path / LAST_ADAPTER))
            folder.export_best(trainer.state.best_model_checkpoint, best_is_last=best is evaluation.history[-1])
    except DivergenceError as error:
        if trainer.is_world_process_zero():
            evaluation.record_divergence(error, trainer.state.epoch or 0.0)
        folder.end(attempt, "diverged", error=str(error))
        raise
    except BaseException as error:
        folder.end(attempt, "failed", error=f"{type(error).__name__}: {error}")
        raise
    summary = {
        "run_name": folder.path.name,
        "run_id": attempt.run_id,
        "family": config.family,
        "task": config.data.task,
        "method": config.adapter.method,
        "seed": config.training.seed,
        "best_epoch": best["epoch"],
        "best": best,
        "history": evaluation.history,
        "params_pct": prepared.params_pct,
        "trainable_params": prepared.trainable_params,
        "train_loss": train_output.training_loss,
        "train_seconds": round(time.time() - started, 1),
        "attempt": attempt.number,
        "resumed_from": attempt.resume_from.name if attempt.resume_from else None,
        "smoke": config.training.smoke,
    }
    if trainer.is_world_process_zero():
        (folder.path / "summary.json").write_text(json.dumps(summary, indent=2))
    folder.end(attempt, "complete", best_epoch=best["epoch"])
    return summary


def run(config: RunConfig) -> dict[str, Any]:
    """Prepare and train one configuration (resuming a finished run returns its summary)."""
    try:
        prepared = prepare(config)
    except RunAlreadyComplete as done:
        logger.warning("%s", done)
        return done.summary or {}
    return train(prepared)
