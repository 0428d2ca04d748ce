"""The run's settings dataclasses: ``GoatTrainingArguments`` and every family's task arguments.

A run is three dataclasses (:mod:`goat.train.settings` parses them): the adapter (:class:`goat.GoatConfig`),
the family's task arguments (a :class:`TaskArguments` subclass, below) and
:class:`GoatTrainingArguments`, which is transformers' ``TrainingArguments`` (every standard flag
works as in the transformers examples) with this project's run settings added and a few defaults
changed to what a GOAT run needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainingArguments

from goat.adapters import svd_cache


def setting(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class GoatTrainingArguments(TrainingArguments):
    """transformers' ``TrainingArguments`` plus the balance loss, results and run-folder settings."""

    # --- changed transformers defaults
    output_dir: str = setting(
        "Root folder of the run folders: each run writes <output_dir>/<family>/<run_name>/.", default="outputs"
    )
    run_name: str | None = setting(
        "Run folder name (default: task, method, rank, lr, seed and a hash of the settings).", default=None
    )
    seed: int = setting("Seed for the adapter init, data order and dropout.", default=0)
    save_strategy: str = setting(
        "Checkpoints: epoch (at the end of every epoch; what resuming needs), steps or no.", default="epoch"
    )
    save_total_limit: int | None = setting(
        "Checkpoints kept; the newest and the best epoch's always are (with 1, only the best remains once the run completes).",
        default=1,
    )
    logging_steps: float = setting("Log every N optimiser steps.", default=10)
    report_to: list[str] = setting(
        "Loggers: none, wandb (offline by itself without network), tensorboard; several allowed.",
        default_factory=lambda: ["none"],
    )
    project: str | None = setting("W&B project (default goat-<family>).", default=None)
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Continue this run (same run name): 'last' (also the bare flag, or --resume) = its newest checkpoint, "
            "starting fresh with a notice when there is none; or the path of one of its checkpoints.",
            "aliases": ["--resume"],
            "nargs": "?",
            "const": "last",
        },
    )
    use_cpu: bool = setting(
        "Train on the CPU (the default where no GPU is visible; bf16 then runs on the CPU).",
        default=not torch.cuda.is_available(),
    )
    # --- this project's run settings
    global_batch_size: int | None = setting(
        "Total batch per optimiser step (the paper's tables give this); sets gradient_accumulation_steps from "
        "per_device_train_batch_size and the number of processes.",
        default=None,
    )
    results_dir: str = setting("Root of results/<family>/results.{csv,jsonl}.", default="results")
    overwrite_output_dir: bool = setting(
        "Start over in a run folder that holds an earlier attempt (its files are deleted; results rows stay).",
        default=False,
    )
    save_adapter: bool = setting(
        "Export the best epoch's adapter (adapter/) and the last one's (adapter-last/).", default=True
    )
    svd_cache: bool = setting(
        "Reuse the base weights' SVDs across runs (keyed by a hash of each weight); --no_svd_cache to recompute.",
        default=True,
    )
    svd_cache_dir: str = setting("Folder of the SVD cache.", default_factory=lambda: str(svd_cache.default_cache_dir()))
    smoke: bool = setting("Mark results as a smoke run of the code path (not a reproduction).", default=False)
    study: str | None = setting(
        "Paper analysis this run belongs to (set by goat.studies); goat.report lists such runs only with --study.",
        default=None,
    )


@dataclass
class TaskArguments:
    """What every family reads: the task, the base model and how much data."""

    task: str = setting("Task within the family (e.g. rte, mnli, tweet_sentiment, cars, gsm8k).", default="")
    model_name_or_path: str = setting(
        "Hub id or local folder of the base model; 'embedded' = the packaged default model.", default=""
    )
    dataset_name: str | None = setting("Hub dataset id instead of the family's default.", default=None)
    max_train_samples: int | None = setting("Use at most this many training examples (seeded subset).", default=None)
    max_eval_samples: int | None = setting("Use at most this many evaluation examples per split.", default=None)


@dataclass
class QuantizedBaseArguments:
    """For families whose base model may be loaded quantized (QLoRA)."""

    quantization: str | None = setting(
        "Load the base quantized with bitsandbytes: 4bit (NF4 + double quantization, as QLoRA) or 8bit; W_res is then a "
        "frozen low-rank path in the forward.",
        default=None,
    )


# ------------------------------------------------------------------ each family's task arguments
@dataclass
class GlueArguments(QuantizedBaseArguments, TaskArguments):
    """GLUE task, model and data settings."""

    max_seq_length: int = setting("Max tokens per example.", default=128)
    prompt_style: str = setting(
        "Input encoding: plain (LoRA paper) or instruction (authors' prompts).", default="plain"
    )
    data_dir: str | None = setting("Local folder <task>/{train,validation}.jsonl instead of the hub.", default=None)


@dataclass
class VisionArguments(TaskArguments):
    """Image-classification task, backbone and data settings."""

    backbone: str = setting(
        "Image backbone implementation: hf (transformers CLIP vision tower, as the authors ran) or open_clip.",
        default="hf",
    )
    pretrained: str = setting(
        "Weights for backbones that name them apart from the model (open_clip: a tag such as openai, or a checkpoint file).",
        default="openai",
    )
    head: str = setting(
        "Classifier head: linear (new, trained in full) or zeroshot (frozen class-name prompt embeddings; open_clip).",
        default="linear",
    )
    val_holdout: bool = setting(
        "Train images: drop the authors' validation hold-out (a tenth of train, at most 5,000; none for EuroSAT).",
        default=True,
    )
    data_dir: str | None = setting("Local folder <task>/{train,test}/<class>/<image> instead of the hub.", default=None)


@dataclass
class CausalLMArguments(QuantizedBaseArguments, TaskArguments):
    """Causal-LM task, model, data and generation settings."""

    max_seq_length: int = setting(
        "Max tokens per training example (longer ones are dropped from the subset).", default=512
    )
    train_file: str | None = setting(
        "Local training file (json, jsonl or parquet) instead of the hub dataset.", default=None
    )
    eval_data: str | None = setting(
        "Evaluation data: GSM8K test file (default: the hub), MT-Bench question.jsonl (required), LLM-Adapters "
        "dataset/ folder (commonsense, required).",
        default=None,
    )
    eval_sets: list[str] | None = setting(
        "Commonsense sets to evaluate (default: all 8; aliases such as arc_c work).", default=None
    )
    max_new_tokens: int = setting("Evaluation: new tokens per generated answer.", default=512)
    num_beams: int = setting("Evaluation: beams (1 = greedy decoding).", default=1)
    attn_implementation: str = setting(
        "Attention: auto (flash_attention_2 when installed, on GPU with --bf16; else sdpa), flash_attention_2, sdpa or eager.",
        default="auto",
    )
    allow_unconfined_sandbox: bool = setting(
        "HumanEval: run the samples even where the code sandbox cannot confine them (not root, or no PID "
        "namespace, allow-listed root or seccomp filter): the model's code then runs with the user's uid and "
        "groups. Off: every sample is recorded as failed with a line naming what is missing.",
        default=False,
    )
