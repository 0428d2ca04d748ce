"""GLUE tasks for the paper's Table 4: specs, loading, encoding and metrics.

Metrics follow the paper (App. E.1): Matthews correlation for CoLA, accuracy elsewhere, and MNLI
scored on matched + mismatched together. The authors' code scored CoLA by accuracy and MNLI on
the matched split only; both numbers are still reported here (``accuracy``, ``validation_matched_accuracy``)
so runs can be compared with either.

Two input encodings:

* ``plain`` (default): the sentence or sentence pair through the tokenizer's own pair encoding, as
  in the LoRA paper's RoBERTa runs.
* ``instruction``: the authors' single-sequence prompts, e.g. ``"classify the sentiment of the
  text: {sentence}\\nresult: "``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from goat.tasks.errors import DataUnavailableError

PROMPT_STYLES = ("plain", "instruction")
LOCAL_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class TextClassificationTask:
    """One sentence(-pair) classification task.

    ``instruction`` holds the authors' prompt: a format string over ``text_keys``.
    """

    name: str
    text_keys: tuple[str, ...]
    num_labels: int
    metric: str
    eval_splits: tuple[str, ...]
    instruction: str
    hub_config: str | None = None


_PAIR = "{0}\n{1}\nresult: "
GLUE_TASKS: dict[str, TextClassificationTask] = {
    task.name: task
    for task in (
        TextClassificationTask(
            "cola",
            ("sentence",),
            2,
            "mcc",
            ("validation",),
            "classify the grammaticality of the text: {0}\nresult: ",
            "cola",
        ),
        TextClassificationTask(
            "sst2",
            ("sentence",),
            2,
            "accuracy",
            ("validation",),
            "classify the sentiment of the text: {0}\nresult: ",
            "sst2",
        ),
        TextClassificationTask(
            "mrpc",
            ("sentence1", "sentence2"),
            2,
            "accuracy",
            ("validation",),
            "classify the semantic similarity of the text: " + _PAIR,
            "mrpc",
        ),
        TextClassificationTask(
            "qqp",
            ("question1", "question2"),
            2,
            "accuracy",
            ("validation",),
            "classify the semantic similarity of the text: " + _PAIR,
            "qqp",
        ),
        TextClassificationTask(
            "mnli",
            ("premise", "hypothesis"),
            3,
            "accuracy",
            ("validation_matched", "validation_mismatched"),
            "classify the semantic similarity of the text: " + _PAIR,
            "mnli",
        ),
        TextClassificationTask(
            "qnli",
            ("question", "sentence"),
            2,
            "accuracy",
            ("validation",),
            "classify the semantic similarity of the question and the sentence: " + _PAIR,
            "qnli",
        ),
        TextClassificationTask(
            "rte",
            ("sentence1", "sentence2"),
            2,
            "accuracy",
            ("validation",),
            "determine if the second sentence entails the first sentence: " + _PAIR,
            "rte",
        ),
    )
}


def get_glue_task(name: str) -> TextClassificationTask:
    """The spec of GLUE task ``name`` (lower case, as in the ``glue`` dataset configs)."""
    if name not in GLUE_TASKS:
        raise ValueError(
            f"unknown GLUE task {name!r}; choose one of {', '.join(GLUE_TASKS)} "
            "(or tweet_sentiment / drug_reviews, the offline embedded tasks)."
        )
    return GLUE_TASKS[name]


# ------------------------------------------------------------------------------------- loading
def load_glue(task: TextClassificationTask, dataset_id: str = "nyu-mll/glue", data_dir: str | None = None) -> Any:
    """``DatasetDict`` with ``train`` and the task's eval splits, from the hub or a local folder.

    A local folder holds one file per split, named after the split (``train.jsonl``,
    ``validation.csv``, ``validation_matched.tsv``, ...) with the task's text columns and ``label``;
    ``<data_dir>/<task>/`` is tried before ``<data_dir>/``.
    """
    import datasets

    if data_dir is not None:
        return _load_local(task, Path(data_dir))
    try:
        return datasets.load_dataset(dataset_id, task.hub_config)
    except Exception as error:  # offline, unknown id, gated: one actionable message
        raise DataUnavailableError(
            f"cannot load GLUE {task.name} from the hub ({dataset_id!r}: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). With network, check the id; offline, "
            "pass --data-dir with train/validation files, or run the embedded default: "
            "--task tweet_sentiment --model_name_or_path embedded."
        ) from error


def _load_local(task: TextClassificationTask, data_dir: Path) -> Any:
    import datasets

    folder = data_dir / task.name if (data_dir / task.name).is_dir() else data_dir
    files: dict[str, str] = {}
    for split in ("train", *task.eval_splits):
        found = [p for p in sorted(folder.glob(f"{split}.*")) if p.suffix in LOCAL_SUFFIXES]
        if not found:
            raise DataUnavailableError(
                f"--data-dir {data_dir}: no {split}.{{jsonl,json,csv,tsv,parquet}} for {task.name} in {folder}."
            )
        files[split] = str(found[0])
    suffixes = {Path(f).suffix for f in files.values()}
    if len(suffixes) > 1:
        raise DataUnavailableError(f"--data-dir {folder}: mixed file types {sorted(suffixes)}; use one format.")
    suffix = suffixes.pop()
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    raw = datasets.load_dataset(LOCAL_SUFFIXES[suffix], data_files=files, **kwargs)
    missing = [c for c in (*task.text_keys, "label") if c not in raw["train"].column_names]
    if missing:
        raise DataUnavailableError(f"{files['train']}: missing columns {missing} for {task.name}.")
    return raw


# ------------------------------------------------------------------------------------ encoding
def encode_glue(
    task: TextClassificationTask, tokenizer: Any, dataset: Any, max_length: int = 128, prompt_style: str = "plain"
) -> Any:
    """Tokenise ``dataset`` (``input_ids``, ``attention_mask``, ``labels``), dropping the raw columns."""
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"--prompt-style {prompt_style!r}: choose one of {', '.join(PROMPT_STYLES)}.")

    def encode(batch: dict[str, list]) -> dict[str, list]:
        columns = [batch[key] for key in task.text_keys]
        if prompt_style == "instruction":
            texts = [task.instruction.format(*parts) for parts in zip(*columns)]
            encoded = tokenizer(texts, truncation=True, max_length=max_length)
        else:
            encoded = tokenizer(*columns, truncation=True, max_length=max_length)
        encoded["labels"] = batch["label"]
        return encoded

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc=f"tokenising {task.name}")


# ------------------------------------------------------------------------------------- metrics
def matthews_corrcoef(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation (multiclass form, Gorodkin 2004); 0 when a marginal is constant."""
    preds, gold = np.asarray(predictions), np.asarray(labels)
    classes = np.union1d(preds, gold)
    confusion = np.zeros((classes.size, classes.size), dtype=np.float64)
    np.add.at(confusion, (np.searchsorted(classes, gold), np.searchsorted(classes, preds)), 1)
    n, correct = confusion.sum(), np.trace(confusion)
    true_totals, pred_totals = confusion.sum(axis=1), confusion.sum(axis=0)
    numerator = correct * n - true_totals @ pred_totals
    denominator = np.sqrt((n**2 - pred_totals @ pred_totals) * (n**2 - true_totals @ true_totals))
    return float(numerator / denominator) if denominator > 0 else 0.0


def binary_f1(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """F1 of the positive class (label 1), as reported for MRPC and QQP."""
    preds, gold = np.asarray(predictions), np.asarray(labels)
    true_pos = float(np.sum((preds == 1) & (gold == 1)))
    denominator = float(np.sum(preds == 1) + np.sum(gold == 1))
    return 2 * true_pos / denominator if denominator else 0.0


def glue_metrics(task: TextClassificationTask, predictions: Sequence[int], labels: Sequence[int]) -> dict[str, float]:
    """Accuracy always; plus the task's paper metric (MCC for CoLA) and F1 for MRPC/QQP."""
    preds, gold = np.asarray(predictions), np.asarray(labels)
    metrics = {"accuracy": float(np.mean(preds == gold))}
    if task.metric == "mcc":
        metrics["mcc"] = matthews_corrcoef(preds, gold)
    if task.name in ("mrpc", "qqp"):
        metrics["f1"] = binary_f1(preds, gold)
    return metrics


def mnli_overall(
    matched_predictions: Sequence[int],
    matched_labels: Sequence[int],
    mismatched_predictions: Sequence[int],
    mismatched_labels: Sequence[int],
) -> float:
    """Accuracy over matched and mismatched validation together (paper App. E.1)."""
    preds = np.concatenate([np.asarray(matched_predictions), np.asarray(mismatched_predictions)])
    gold = np.concatenate([np.asarray(matched_labels), np.asarray(mismatched_labels)])
    return float(np.mean(preds == gold))
