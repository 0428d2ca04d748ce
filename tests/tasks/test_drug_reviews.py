"""The second embedded task: drug reviews read from the installed package, with the package's own split."""

from __future__ import annotations

import zipfile
from collections import Counter

import pytest

from goat.tasks.drug_reviews import LABELS, load_drug_reviews, read_split
from goat.tasks.errors import DataUnavailableError

HEADER = "\tdrugName\tcondition\treview\trating\tdate\tusefulCount\n"


def test_the_archive_ships_with_the_package_and_has_the_documented_shape():
    train_texts, train_labels = read_split("train")
    eval_texts, eval_labels = read_split("validation")
    assert (len(train_texts), len(eval_texts)) == (600, 379)
    count = lambda labels: {LABELS[i]: n for i, n in Counter(labels).items()}  # noqa: E731
    assert count(train_labels) == {"negative": 161, "neutral": 54, "positive": 385}
    assert count(eval_labels) == {"negative": 95, "neutral": 36, "positive": 248}
    assert len(set(train_texts) & set(eval_texts)) == 1  # the one repeated review: the loader drops it from train
    assert all(text and not text.startswith('"') and "&#039;" not in text for text in train_texts + eval_texts)


def _archive(tmp_path, train_rows: str, test_rows: str):
    path = tmp_path / "drugsCom.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("drugsComTrain.tsv", HEADER + train_rows)
        archive.writestr("drugsComTest.tsv", HEADER + test_rows)
    return path


def test_entities_and_quotes_are_undone_and_an_unknown_rating_is_named(tmp_path):
    good = _archive(tmp_path, '1\tA\tPain\t"""It didn&#039;t help"""\tnegative\tMay 1, 2011\t3\n', "")
    assert read_split("train", good) == (["It didn't help"], [LABELS.index("negative")])
    bad = _archive(tmp_path, '1\tA\tPain\t"""fine"""\t7\tMay 1, 2011\t3\n', "")
    with pytest.raises(DataUnavailableError, match=r"unexpected ratings \['7'\]"):
        read_split("train", bad)


def test_fixed_test_set_and_seeded_training_subsets():
    a = load_drug_reviews(max_train_samples=300, max_eval_samples=200, seed=0)
    b = load_drug_reviews(max_train_samples=300, max_eval_samples=200, seed=1)
    assert a["validation"]["text"] == b["validation"]["text"] == read_split("validation")[0][:200]
    assert a["train"]["text"] != b["train"]["text"]
    full = [load_drug_reviews(seed=seed) for seed in (0, 1)]
    assert full[0]["train"]["text"] != full[1]["train"]["text"]
    assert sorted(full[0]["train"]["text"]) == sorted(full[1]["train"]["text"])  # all 599, the seed sets the order
    assert len(full[0]["train"]) == 599 and not set(full[0]["train"]["text"]) & set(full[0]["validation"]["text"])


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="--max_eval_samples 380: the test split has 379"):
        load_drug_reviews(max_eval_samples=380)
    with pytest.raises(ValueError, match="--max_train_samples 600: the training split has 599"):
        load_drug_reviews(max_train_samples=600)
