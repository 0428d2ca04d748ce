"""Image-classification entrypoint (paper §4, Table 1; hyperparameters Table 10).

CLIP ViT-B/32 with adapters on q, k, v, the attention output and both MLP linears of every block
(72 layers). The head is never adapted: a new linear head trained in full (what the authors ran)
or, with ``--backbone open_clip --head zeroshot``, a frozen head of class-name prompt embeddings.
After every epoch the whole test split is scored by top-1 accuracy.

``--task digits`` is the offline smoke run: scikit-learn's bundled digits upsampled to 32 px and a
tiny randomly initialised CLIP (``--model_name_or_path smoke``) through the same code path. Its results are
marked ``smoke``; it checks the pipeline and is not a reproduction of Table 1.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from torch import nn

import goat
from goat.tasks.errors import DataUnavailableError
from goat.tasks.vision_data import (
    SMOKE_DATASET,
    ImageClassificationSet,
    class_names,
    clip_eval_transform,
    clip_train_transform,
    collate_image_batch,
    drop_val_holdout,
    get_dataset_spec,
    load_digits_smoke,
    load_image_dataset,
)
from goat.tasks.vision_models import (
    HEAD_MODULE_NAMES,
    HEADS,
    TARGET_SUFFIXES,
    build_hf_clip_classifier,
    check_open_clip_name,
    create_open_clip,
    image_size,
    open_clip_classifier,
    smoke_clip_vision_config,
    smoke_open_clip,
)
from goat.train.arguments import VisionArguments
from goat.train.bundle import TaskBundle
from goat.train.run_config import RunConfig

logger = logging.getLogger(__name__)

SMOKE_MODEL = "smoke"  # --model_name_or_path smoke: the tiny random CLIP of either backbone
SMOKE_TOKENIZER = "ViT-B-32"  # the smoke open_clip text tower has this tokenizer's shape
SMOKE_TEMPLATES = ('a photo of the number: "{}".',)
HOLDOUT_SEED = 0  # the authors' train/validation split seed, whatever the run's seed
Loaded = TypeVar("Loaded")


def check_flags(args: VisionArguments, smoke: bool) -> None:
    """Reject flag combinations that cannot work, before anything slow is loaded."""
    if args.backbone not in TARGET_SUFFIXES:
        raise ValueError(f"--backbone {args.backbone!r}: choose one of {', '.join(TARGET_SUFFIXES)}.")
    if args.head not in HEADS:
        raise ValueError(f"--head {args.head!r}: choose one of {', '.join(HEADS)}.")
    if args.head == "zeroshot" and args.backbone != "open_clip":
        raise ValueError("--head zeroshot needs --backbone open_clip (the hf classifier has no text tower).")
    if args.backbone == "open_clip" and args.model_name_or_path != SMOKE_MODEL:
        check_open_clip_name(args.model_name_or_path)
    if args.task == SMOKE_DATASET and (args.data_dir or args.dataset_name):
        raise ValueError(
            f"--task {SMOKE_DATASET} is built from scikit-learn's digits; drop --data_dir / --dataset_name."
        )
    if (args.task == SMOKE_DATASET or args.model_name_or_path == SMOKE_MODEL) and not smoke:
        raise ValueError(
            f"--task {SMOKE_DATASET} and --model_name_or_path {SMOKE_MODEL} are smoke runs of the code path, not a "
            "reproduction; pass --smoke so their results are marked as such."
        )


def _subset(split: Any, limit: int | None, seed: int) -> Any:
    if limit is None or limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit))


def load_splits(args: VisionArguments, seed: int) -> tuple[Any, Sequence[str]]:
    """``DatasetDict`` (train, test) as the run uses it, and the zero-shot prompt templates.

    Train is the official train split minus the authors' 10 % validation hold-out (reference
    section 4.1; ``--no_val_holdout`` keeps it all), then ``max_train_samples``; test is the
    official test split, capped by ``max_eval_samples``.
    """
    if args.task == SMOKE_DATASET:
        raw, templates = load_digits_smoke(), SMOKE_TEMPLATES
    else:
        spec = get_dataset_spec(args.task)
        raw = load_image_dataset(spec.name, hub_id=args.dataset_name, local_dir=args.data_dir)
        templates = spec.templates
        if spec.holdout_val and args.val_holdout:
            raw["train"] = drop_val_holdout(raw["train"], seed=HOLDOUT_SEED)
    raw["train"] = _subset(raw["train"], args.max_train_samples, seed)
    raw["test"] = _subset(raw["test"], args.max_eval_samples, seed)
    return raw, templates


def _loading(what: str, load: Callable[[], Loaded]) -> Loaded:
    """``load()``, with a failed download or unreadable checkpoint turned into one actionable line."""
    try:
        return load()
    except (OSError, RuntimeError) as error:  # transformers: OSError; open_clip: RuntimeError
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise DataUnavailableError(
            f"cannot load {what} ({reason}). Check the name; without network, download it elsewhere and "
            f"pass its folder (hf) or checkpoint file (--pretrained, open_clip), or run the offline smoke "
            f"run `--task {SMOKE_DATASET}`."
        ) from error


def load_classifier(args: VisionArguments, names: Sequence[str], templates: Sequence[str]) -> nn.Module:
    """The backbone with its ``classifier`` head for ``names`` (in label order), not yet adapted."""
    if args.backbone == "hf":
        source = smoke_clip_vision_config() if args.model_name_or_path == SMOKE_MODEL else args.model_name_or_path
        return _loading(repr(args.model_name_or_path), lambda: build_hf_clip_classifier(source, class_names=names))
    import open_clip

    if args.model_name_or_path == SMOKE_MODEL:
        clip, tokenizer_name = smoke_open_clip(), SMOKE_TOKENIZER
    else:
        what = f"open_clip {args.model_name_or_path!r} with weights {args.pretrained!r}"
        clip, tokenizer_name = (
            _loading(what, lambda: create_open_clip(args.model_name_or_path, args.pretrained)),
            args.model_name_or_path,
        )
    tokenizer = open_clip.get_tokenizer(tokenizer_name) if args.head == "zeroshot" else None
    return open_clip_classifier(
        clip,
        head=args.head,
        class_names=names,
        templates=templates,
        tokenizer=tokenizer,
        name=f"{args.model_name_or_path}:{args.pretrained}",
    )


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of examples whose highest logit is the true class (Table 1 reports it in %)."""
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def build_vision(config: RunConfig) -> TaskBundle:
    """Adapted CLIP classifier, transformed train split, and a test-accuracy evaluator.

    ``target_modules`` and ``modules_to_save`` default to the backbone's q, k, v, out, fc1, fc2 and
    (with the linear head) the head.
    """
    data, training = config.data, config.training
    check_flags(data, training.smoke)
    trained_head = list(HEAD_MODULE_NAMES) if data.head == "linear" else []
    adapter_config = dataclasses.replace(
        config.adapter,
        target_modules=config.adapter.target_modules or list(TARGET_SUFFIXES[data.backbone]),
        modules_to_save=config.adapter.modules_to_save or trained_head,
    )
    if training.smoke:
        logger.warning(
            "SMOKE RUN of the code path (%s, model %s): tiny data and/or a random tiny CLIP; the "
            "accuracy says the pipeline trains, it is not a reproduction of Table 1.",
            data.task,
            data.model_name_or_path,
        )
    raw, templates = load_splits(data, training.seed)
    names = class_names(raw)
    base = load_classifier(data, names, templates)
    size = image_size(base)
    model = goat.get_goat_model(
        base, adapter_config, svd_cache_dir=training.svd_cache_dir if training.svd_cache else None
    )
    train = ImageClassificationSet(raw["train"], clip_train_transform(size))
    test = ImageClassificationSet(raw["test"], clip_eval_transform(size))
    logger.info("%s: %d classes, %d train / %d test images, %d px", data.task, len(names), len(train), len(test), size)

    def evaluate(trainer) -> dict[str, float]:
        output = trainer.predict(test, metric_key_prefix="test")
        return {"accuracy": top1_accuracy(output.predictions, output.label_ids)}

    return TaskBundle(
        model=model,
        train_dataset=train,
        evaluate=evaluate,
        primary_metric="accuracy",
        data_collator=collate_image_batch,
    )
