"""Commonsense reasoning scoring for the 8 LLM-Adapters test sets (Hu et al., 2023).

Each set's ``test.json`` record carries an ``answer`` label in a set-specific format, and the
model, trained on Commonsense170K, answers "the correct answer is <label>". Scoring takes the
model's response (``response_text``: after the prompt's "### Response:" when the prompt was
decoded along with the answer, and never past a "### Response:" the model generated itself),
finds the first valid label for the set (case-insensitive, as a whole word) and compares it with
the record's ``answer``.

Label formats:

=============  ==========================
set            labels
=============  ==========================
boolq          ``true`` ``false``
piqa           ``solution1`` ``solution2``
social_i_qa    ``answer1`` … ``answer5``
ARC-Challenge  ``answer1`` … ``answer5``
ARC-Easy       ``answer1`` … ``answer5``
openbookqa     ``answer1`` … ``answer5``
hellaswag      ``ending1`` … ``ending4``
winogrande     ``option1`` ``option2``
=============  ==========================
"""

from __future__ import annotations

import logging
import re
from typing import Optional, Sequence

from goat.tasks.commonsense_sets import COMMONSENSE_DATASETS, canonical_dataset_name

logger = logging.getLogger(__name__)
__all__ = ["COMMONSENSE_DATASETS", "canonical_dataset_name", "commonsense_accuracy", "extract_answer", "response_text"]

_ANSWER_N = tuple(f"answer{i}" for i in range(1, 6))
LABELS: dict[str, tuple[str, ...]] = {
    "boolq": ("true", "false"),
    "piqa": ("solution1", "solution2"),
    "social_i_qa": _ANSWER_N,
    "ARC-Easy": _ANSWER_N,
    "ARC-Challenge": _ANSWER_N,
    "openbookqa": _ANSWER_N,
    "hellaswag": tuple(f"ending{i}" for i in range(1, 5)),
    "winogrande": ("option1", "option2"),
}

RESPONSE_MARKER = "### Response:"
# The Alpaca prompt starts with one of these; a text starting so includes the prompt.
_PROMPT_START_RE = re.compile(r"\s*(?:Below is an instruction|### Instruction:)")


def _label_pattern(dataset: str) -> re.Pattern[str]:
    labels = "|".join(LABELS[dataset])
    return re.compile(rf"(?<![A-Za-z0-9_])({labels})(?![A-Za-z0-9_])", re.IGNORECASE)


def response_text(generated: str) -> str:
    """The model's response in ``generated`` (a continuation, or the prompt followed by it).

    A text that starts like the Alpaca prompt ("Below is an instruction…" or "### Instruction:")
    holds the prompt's own "### Response:" marker, and the response starts after it. The response
    ends at the next "### Response:", which only the model can have written (it went on to invent
    another example). For prompt + answer this is LLM-Adapters' ``split("### Response:")[1]``.
    """
    if _PROMPT_START_RE.match(generated):
        head, marker, tail = generated.partition(RESPONSE_MARKER)
        generated = tail if marker else head
    return generated.split(RESPONSE_MARKER, 1)[0]


def extract_answer(dataset: str, generated: str) -> Optional[str]:
    """First valid label for ``dataset`` in the response part of ``generated``, lower-cased.

    Only ``response_text(generated)`` is searched: neither the prompt (with its listed options)
    nor an example the model invented after its answer. Returns ``None`` when no label occurs.
    Raises ``ValueError`` for an unknown dataset.
    """
    name = canonical_dataset_name(dataset)
    match = _label_pattern(name).search(response_text(generated))
    return match.group(1).lower() if match else None


def commonsense_accuracy(dataset: str, generations: Sequence[str], answers: Sequence[str]) -> float:
    """Fraction of generations whose extracted label equals the record's ``answer`` label.

    A generation without a label counts as wrong. Raises ``ValueError`` on a length mismatch,
    empty input or an unknown dataset.
    """
    if len(generations) != len(answers):
        raise ValueError(f"{len(generations)} generations but {len(answers)} answers")
    if not answers:
        raise ValueError("commonsense_accuracy needs at least one example")
    correct = sum(
        int(extract_answer(dataset, text) == gold.strip().lower()) for text, gold in zip(generations, answers)
    )
    return correct / len(answers)
