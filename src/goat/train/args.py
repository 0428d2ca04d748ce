"""`RunArgs`: every flag of ``python -m goat.train``, with per-table defaults from ``configs/<family>.yaml``.

Precedence: dataclass default < YAML ``defaults:`` < YAML ``tasks: <task>:`` < command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers.trainer_utils import SchedulerType

from goat.config import GoatConfig
from goat.train.reporters import REPORTERS

FAMILIES = ("glue", "vision", "math", "code", "chat", "commonsense")
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"
SCHEDULERS = tuple(kind.value for kind in SchedulerType)


def _f(default: Any, help: str, flag: str | None = None, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag, **kw})


@dataclass
class RunArgs:
    """One training run. Field names double as YAML keys; ``--flag-names`` use dashes."""

    family: str = _f("glue", "Task family.")
    task: str = _f("rte", "Task within the family (e.g. rte, mnli, tweet_sentiment, cars, gsm8k).")
    method: str = _f("goat", "Adapter method (goat.METHODS).")
    model: str = _f("FacebookAI/roberta-large", "Hub id or local folder of the base model; 'embedded' = the packaged MiniLM.")
    rank: int = _f(8, "Total adapter rank r.")
    alpha: float = _f(16.0, "LoRA alpha.")
    experts: int = _f(8, "Number of experts E.")
    top_k: int = _f(2, "Experts per token k.")
    scaling: str = _f("default", "Scaling: default (method's own), theory, alpha, rs, or a number.")
    init: str = _f("spread", "goat expert init: spread, principal, minor, random, zero.")
    segment: str = _f(None, "pissa only: SVD block index i to initialise from (Fig. 1), or 'spread' (GOAT's O slices, Table 5).")
    rho: float = _f(10.0, "Prior shrink rho (eq. 19).")
    eta: float = _f(1.0, "LR ratio eta of Thm 3.5.")
    dropout: float = _f(0.05, "Adapter dropout.")
    target_modules: list[str] = _f(None, "Linear layer names to adapt (family default if empty).", nargs="+")
    authors_svd_baselines: bool = _f(False, "pissa/milora as the authors ran them (prior / rho, PiSSA s = 2).")
    aux_loss_coef: float = _f(1e-3, "Balance-loss coefficient (rebuttal: 1e-3).")
    lr: float = _f(1e-4, "Peak learning rate.")
    epochs: float = _f(10.0, "Training epochs.")
    batch_size: int = _f(256, "Total (global) batch size; sets gradient accumulation unless --grad-accum is given.")
    per_device_batch: int = _f(32, "Per-device micro-batch.")
    grad_accum: int = _f(None, "Gradient accumulation steps (overrides the value derived from --batch-size).")
    eval_batch: int = _f(64, "Per-device evaluation batch.")
    warmup_steps: int = _f(100, "Linear warmup steps (paper App. E.5: 100).")
    scheduler: str = _f("linear", "LR scheduler (transformers names: linear, cosine, constant, ...).")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_length: int = _f(128, "Max tokens per example.")
    prompt_style: str = _f("plain", "GLUE input encoding: plain (LoRA paper) or instruction (authors' prompts).")
    max_train_samples: int = _f(None, "Use at most this many training examples (seeded subset).")
    max_eval_samples: int = _f(None, "Use at most this many evaluation examples per split.")
    data_dir: str = _f(None, "Local data folder instead of the hub.")
    dataset_id: str = _f(None, "Override the hub dataset id.")
    seed: int = _f(0, "Seed for adapters, data order and dropout.")
    bf16: bool = _f(False, "bf16 mixed precision (paper: on, GPU only).")
    gradient_checkpointing: bool = _f(False, "Gradient checkpointing.")
    deepspeed: str = _f(None, "DeepSpeed JSON config (e.g. configs/deepspeed/zero2.json).")
    output_dir: str = _f("outputs", "Root folder for checkpoints and logs (a run folder is created inside).")
    results_dir: str = _f("results", "Root folder of results/<family>/results.{csv,jsonl}.")
    report_to: str = _f("none", "none, wandb (offline automatically without network) or tensorboard.")
    project: str = _f(None, "W&B project (default: goat-<family>).")
    run_name: str = _f(None, "Run name (default: built from the hyperparameters).")
    save_adapter: bool = _f(True, "Save the best epoch's adapter (adapter/) and the last one's (adapter-last/) to the run folder.")
    save_strategy: str = _f("epoch", "Checkpoints: epoch (one at the end of every epoch; needed by --resume) or no.")
    save_total_limit: int = _f(1, "Checkpoints kept; the newest and the best epoch's always are (with 1, only the best remains once the run completes).")
    resume: bool = _f(False, "Continue this run (same run name) from its newest checkpoint; starts fresh, with a notice, when there is none.")
    overwrite_output_dir: bool = _f(False, "Start over in a run folder that holds an earlier attempt (its files are deleted; results rows stay).")
    logging_steps: int = _f(10, "Log every N optimiser steps.")
    dataloader_workers: int = _f(0, "Data-loading worker processes per device (image decoding benefits from 4-8).")
    smoke: bool = _f(False, "Mark results as a smoke run of the code path (not a reproduction).")
    study: str = _f(None, "Paper analysis this run belongs to (set by goat.studies); goat.report lists such runs only with --study.")

    # --- vision
    backbone: str = _f("hf", "Image backbone implementation: hf (transformers CLIP vision tower, as the authors ran) or open_clip.")
    pretrained: str = _f("openai", "Weights for backbones that name them apart from --model (open_clip: a tag such as openai, or a checkpoint file).")
    head: str = _f("linear", "Image classifier head: linear (new, trained in full) or zeroshot (frozen class-name prompt embeddings; open_clip).")
    val_holdout: bool = _f(True, "Train images: drop the authors' validation hold-out (a tenth of train, at most 5,000; none for EuroSAT).")

    # --- causal LM
    train_file: str = _f(None, "Causal LM: local training file (json, jsonl or parquet) instead of the hub dataset.")
    eval_data: str = _f(None, "Causal LM evaluation data: GSM8K test file (default: the hub), MT-Bench question.jsonl (required), LLM-Adapters dataset/ folder (commonsense, required).")
    eval_sets: list[str] = _f(None, "Commonsense sets to evaluate (default: all 8; aliases such as arc_c work).", nargs="+")
    max_new_tokens: int = _f(512, "Causal LM evaluation: new tokens per generated answer.")
    num_beams: int = _f(1, "Causal LM evaluation: beams (1 = greedy decoding).")
    attn_implementation: str = _f("auto", "Causal LM attention: auto (flash_attention_2 when installed, on GPU with --bf16; else sdpa), flash_attention_2, sdpa or eager.")

    # ----------------------------------------------------------------- derived
    def goat_config(self, target_modules: list[str], modules_to_save: list[str]) -> GoatConfig:
        scaling: Any = None if self.scaling == "default" else self.scaling
        if isinstance(scaling, str) and scaling not in ("theory", "alpha", "rs"):
            try:
                scaling = float(scaling)
            except ValueError:
                raise ValueError(f"--scaling {self.scaling!r}: use default, theory, alpha, rs or a number.") from None
        return GoatConfig(
            method=self.method, r=self.rank, lora_alpha=self.alpha, num_experts=self.experts, top_k=self.top_k,
            rho=self.rho, eta=self.eta, scaling=scaling, init=self.init, segment=self.parsed_segment(), lora_dropout=self.dropout,
            target_modules=self.target_modules or target_modules, modules_to_save=modules_to_save,
            seed=self.seed, authors_svd_baselines=self.authors_svd_baselines,
        )  # fmt: skip

    def parsed_segment(self) -> int | str | None:
        """``--segment``: a block index (digits) or 'spread'; the YAML may give an int."""
        if self.segment is None or isinstance(self.segment, int) or self.segment == "spread":
            return self.segment
        if str(self.segment).isdigit():
            return int(self.segment)
        raise ValueError(f"--segment {self.segment!r}: use a block index (0, 1, ...) or 'spread'.")

    def gradient_accumulation(self, world_size: int | None = None) -> int:
        """Steps so that per_device_batch x world_size x steps = batch_size."""
        if self.grad_accum is not None:
            return self.grad_accum
        world = world_size or int(os.environ.get("WORLD_SIZE", "1"))
        per_step = self.per_device_batch * world
        if self.batch_size % per_step:
            raise ValueError(
                f"--batch-size {self.batch_size} is not a multiple of per-device batch {self.per_device_batch} x "
                f"{world} processes; change --per-device-batch or pass --grad-accum."
            )
        return max(1, self.batch_size // per_step)

    def default_run_name(self, config_hash: str) -> str:
        """``<task>-<method>-r<rank>a<alpha>[-e<E>k<k>]-lr<lr>-s<seed>-<config hash>``: one folder per configuration and seed."""
        moe = f"-e{self.experts}k{self.top_k}" if self.method in ("goat", "goat_plus", "molora", "hydralora", "adamole", "full_moe") else ""
        return f"{self.task}-{self.method}-r{self.rank}a{self.alpha:g}{moe}-lr{self.lr:g}-s{self.seed}-{config_hash[:6]}"

    def validate(self) -> None:
        """Every check that needs no model, tokenizer or data: ``ValueError`` naming the flag and the fix.

        Also creates ``--output-dir`` and ``--results-dir`` and checks that they are writable, so that a
        run never trains for an epoch before finding out it cannot write its results.
        """
        positive = {"lr": self.lr, "epochs": self.epochs, "batch_size": self.batch_size, "per_device_batch": self.per_device_batch,
                    "eval_batch": self.eval_batch, "max_length": self.max_length, "logging_steps": self.logging_steps,
                    "max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams}  # fmt: skip
        optional_positive = {"grad_accum": self.grad_accum, "max_train_samples": self.max_train_samples,
                             "max_eval_samples": self.max_eval_samples, "save_total_limit": self.save_total_limit}  # fmt: skip
        for name, value in {**positive, **{k: v for k, v in optional_positive.items() if v is not None}}.items():
            if not value > 0:
                raise ValueError(f"--{name.replace('_', '-')} {value}: must be > 0.")
        for name, value in {"warmup_steps": self.warmup_steps, "weight_decay": self.weight_decay,
                            "aux_loss_coef": self.aux_loss_coef, "dataloader_workers": self.dataloader_workers}.items():  # fmt: skip
            if value < 0:
                raise ValueError(f"--{name.replace('_', '-')} {value}: must be >= 0.")
        if self.scheduler not in SCHEDULERS:
            close = difflib.get_close_matches(self.scheduler, SCHEDULERS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"--scheduler {self.scheduler!r} is unknown; {hint}choose one of {', '.join(SCHEDULERS)}.")
        if self.report_to not in REPORTERS:
            raise ValueError(f"--report-to {self.report_to!r} is unknown; choose one of {', '.join(REPORTERS)}.")
        if self.save_strategy not in ("epoch", "no"):
            raise ValueError(f"--save-strategy {self.save_strategy!r}: choose epoch or no.")
        if self.resume and self.overwrite_output_dir:
            raise ValueError("--resume continues a run and --overwrite-output-dir starts it over; pass one of them.")
        if self.resume and self.save_strategy == "no":
            raise ValueError("--resume needs checkpoints; drop --save-strategy no.")
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise ValueError(f"--deepspeed {self.deepspeed}: no such file (configs/deepspeed/zero2.json or zero3.json).")
        self.gradient_accumulation()
        self.goat_config(["(family default)"], [])  # adapter settings: GoatConfig validates them
        for flag, folder in (("--output-dir", self.output_dir), ("--results-dir", self.results_dir)):
            ensure_writable(Path(folder), flag)


def ensure_writable(folder: Path, flag: str) -> None:
    """Create ``folder`` if needed and prove it writable, or raise a one-line ``ValueError``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ValueError(f"{flag} {folder} is not a writable folder ({error.strerror or error}); choose another.") from None


FIELDS = {f.name: f for f in dataclasses.fields(RunArgs)}


def load_yaml_defaults(family: str, task: str | None, config_path: str | None = None) -> dict[str, Any]:
    """Merged ``defaults`` and ``tasks[task]`` of the family's YAML file, validated against RunArgs."""
    path = Path(config_path) if config_path else CONFIG_DIR / f"{family}.yaml"
    if not path.is_file():
        if config_path:
            raise ValueError(f"--config {config_path}: no such file.")
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    merged = dict(data.get("defaults", {}))
    tasks = data.get("tasks", {})
    task = task or merged.get("task")
    if task is not None and tasks and task not in tasks:
        raise ValueError(f"--task {task!r} is not in {path.name}; choose one of {', '.join(tasks)}.")
    merged.update(tasks.get(task, {}) or {})
    unknown = sorted(set(merged) - set(FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid keys are RunArgs fields.")
    return merged


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m goat.train",
        description="Fine-tune with GOAT or a baseline; per-table defaults come from configs/<family>.yaml.",
    )
    parser.add_argument("family", choices=FAMILIES, help="Task family.")
    parser.add_argument("--config", default=None, help="YAML file replacing configs/<family>.yaml.")
    for name, f in FIELDS.items():
        if name == "family":
            continue
        flag = "--" + name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        extra = {"nargs": f.metadata["nargs"]} if "nargs" in f.metadata else {}
        parser.add_argument(flag, type=kind, default=None, help=f.metadata["help"], **extra)
    return parser


def parse_args(argv: list[str] | None = None) -> RunArgs:
    """Command line -> RunArgs, filling unset flags from the family YAML."""
    ns = vars(build_parser().parse_args(argv))
    family, config_path = ns.pop("family"), ns.pop("config")
    given = {k: v for k, v in ns.items() if v is not None}
    values = {**load_yaml_defaults(family, given.get("task"), config_path), **given, "family": family}
    return RunArgs(**values)
