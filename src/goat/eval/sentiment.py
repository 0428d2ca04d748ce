"""Scoring of the causal-LM embedded task (:mod:`goat.tasks.tweet_answers`): the sentiment label read
from a generated answer, by the rule :mod:`goat.eval.commonsense` applies to the commonsense sets."""

from __future__ import annotations

import re
from collections.abc import Sequence

from goat.eval.commonsense import response_text
from goat.tasks.sentiment import LABELS

_LABEL_PATTERN = re.compile(rf"(?<![A-Za-z0-9_])({'|'.join(LABELS)})(?![A-Za-z0-9_])", re.IGNORECASE)


def extract_sentiment(generated: str) -> str | None:
    """First of negative / neutral / positive (whole word, any case) in the response part, lower-cased; None if absent.

    The same rule as :func:`goat.eval.commonsense.extract_answer`, over this task's labels.
    """
    match = _LABEL_PATTERN.search(response_text(generated))
    return match.group(1).lower() if match else None


def sentiment_accuracy(generations: Sequence[str], answers: Sequence[str]) -> float:
    """Fraction of generations whose extracted label equals the answer; a generation without a label is wrong."""
    if len(generations) != len(answers):
        raise ValueError(f"{len(generations)} generations but {len(answers)} answers")
    if not answers:
        raise ValueError("sentiment_accuracy needs at least one example")
    return sum(extract_sentiment(text) == answer for text, answer in zip(generations, answers)) / len(answers)
