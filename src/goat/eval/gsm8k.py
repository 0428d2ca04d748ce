"""GSM8K scoring: pull the final number out of a generation and compare it with the reference.

The rules, in order (``extract_final_number``):

1. Anything from a hallucinated next prompt on ("### Instruction" or "Below is an instruction")
   is ignored, so numbers from an invented follow-up question cannot win.
2. ``####`` (GSM8K references): the first number after the first ``####`` is the answer.
3. Otherwise "the answer is" (MetaMathQA style, also "the final answer is", optionally followed
   by ":", case-insensitive): the first number on the line of the *last* such marker. MetaMath's
   scorer likewise takes the first number after the last "The answer is: ". An earlier marker
   (a draft the model revised) and numbers on later lines (a further question) do not count.
4. Otherwise, or when that line has no number, the last number in the text is the answer.

Numbers are normalised before comparison: thousands separators and ``$`` are dropped, a trailing
sentence period is not part of the number, "5.0" and "5.00" become "5", "-0" becomes "0", and a
fraction such as "3/4" is kept as written (so "3/4" does not equal "0.75"). A leading minus counts
only when it is not a binary minus between two operands ("10-3" is 10 and 3).

Unlike the authors' scorer (which read only ``####`` and truncated decimals to integers), a
decimal answer must match exactly after normalisation.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Optional, Sequence

logger = logging.getLogger(__name__)

# A number: optional sign (not a binary minus after a word character or a closing bracket),
# optional "$", then either comma-grouped thousands or plain digits, optional decimals,
# optional "/denominator".
_INTEGER = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
_NUMBER_RE = re.compile(
    r"(?P<sign>(?<![\w)\]])[-\u2212])?(?:\$\s?)?"
    r"(?P<num>" + _INTEGER + r"(?:\.\d+)?(?:/" + _INTEGER + r"(?:\.\d+)?)?|\.\d+)"
)
_HASH_MARKER = "####"
# Only spaces or tabs after "is"/":": the number must be on the marker's own line.
_ANSWER_IS_RE = re.compile(r"the\s+(?:final\s+)?answer\s+is[ \t]*:?", re.IGNORECASE)
_CONTINUATION_RE = re.compile(r"###\s*Instruction|Below is an instruction", re.IGNORECASE)


def _normalise_decimal(text: str) -> str:
    """'1,000.50' -> '1000.5', '5.0' -> '5', '-0' -> '0'."""
    value = Decimal(text.replace(",", ""))
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def normalise_number(sign: str, number: str) -> Optional[str]:
    """Canonical string for a matched number; fractions keep their written form (normalised parts)."""
    try:
        if "/" in number:
            numerator, denominator = number.split("/", 1)
            body = f"{_normalise_decimal(numerator)}/{_normalise_decimal(denominator)}"
            return ("-" + body) if sign and not body.startswith("0/") else body
        value = _normalise_decimal(("-" if sign else "") + number)
    except InvalidOperation:  # pragma: no cover - the regex only admits valid decimals
        return None
    return value


def _numbers(text: str) -> list[str]:
    found = []
    for match in _NUMBER_RE.finditer(text):
        value = normalise_number(match.group("sign") or "", match.group("num"))
        if value is not None:
            found.append(value)
    return found


def extract_final_number(text: str) -> Optional[str]:
    """Return the answer number in ``text`` as a normalised string, or ``None`` if there is none.

    See the module docstring for the rules (``####``, else the last "the answer is" line, else
    the last number).
    """
    if not text:
        return None
    continuation = _CONTINUATION_RE.search(text)
    if continuation is not None and continuation.start() > 0:
        text = text[: continuation.start()]
    hash_at = text.find(_HASH_MARKER)
    if hash_at != -1:
        after = _numbers(text[hash_at + len(_HASH_MARKER) :])
        if after:
            return after[0]
    markers = list(_ANSWER_IS_RE.finditer(text))
    if markers:
        on_line = _numbers(text[markers[-1].end() :].split("\n", 1)[0])
        if on_line:
            return on_line[0]
    numbers = _numbers(text)
    return numbers[-1] if numbers else None


def gsm8k_exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of generations whose final number equals the reference's "#### N" number.

    ``predictions`` are generated texts, ``references`` GSM8K ``answer`` strings (or bare numbers).
    A generation with no number counts as wrong. Raises ``ValueError`` on a length mismatch, an
    empty input, or a reference without a number.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not references:
        raise ValueError("gsm8k_exact_match needs at least one example")
    correct = 0
    for index, (prediction, reference) in enumerate(zip(predictions, references)):
        gold = extract_final_number(reference)
        if gold is None:
            raise ValueError(f"reference {index} has no number: {reference!r}")
        correct += int(extract_final_number(prediction) == gold)
    return correct / len(references)
