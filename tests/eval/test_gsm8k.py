"""GSM8K answer extraction and exact match."""

import pytest

from goat.eval.gsm8k import extract_final_number, gsm8k_exact_match


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("#### 1,234", "1234"),
        ("The answer is -3.5.", "-3.5"),
        ("The answer is: 18", "18"),
        ("So she pays $1,000 in total.", "1000"),
        ("It costs 1,234,567 dollars", "1234567"),
        ("The final answer is 5.0", "5"),
        ("Total: 12.50", "12.5"),
        ("She adds 3/4 cup", "3/4"),
        ("10-3=7", "7"),  # a binary minus is not a sign
        ("- 5 apples", "5"),  # a list bullet is not a sign
        ("The temperature fell to -12 degrees.", "-12"),
        ("The answer is 42. Then 7 more steps", "42"),  # marker beats the last number
        ("First 3, then 4, so 7.", "7"),  # no marker: the last number
        ("#### 8\nThe answer is 9", "8"),  # #### has priority over "the answer is"
        ("The answer is 6.\n\n### Instruction:\nWhat is 99 + 1?", "6"),
        ("We get 6.\n\n### Instruction:\nWhat is 99 + 1?", "6"),  # continuation ignored
        ("-0", "0"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_final_number(text, expected):
    assert extract_final_number(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        # MetaMath's rule: the last marker wins (the first was a draft the model revised) ...
        ("The answer is 5. Wait, I forgot the tax.\nThe answer is: 7", "7"),
        ("The answer is: 3\nNo, recount: the final answer is 4.", "4"),
        # ... and only the number on the marker's line counts, not later numbers.
        ("The answer is: 12\nThen there were 15 more apples in the next box.", "12"),
        ("The answer is: 18\n\nQuestion: Tom has 30 marbles.", "18"),
        # No number on the marker's line: the last number in the text.
        ("The answer is below.\n42", "42"),
        ("She has 3 + 4 = 7 apples. The answer is:\n7 apples", "7"),
    ],
)
def test_answer_is_fallback_uses_the_last_marker_and_its_line(text, expected):
    assert extract_final_number(text) == expected


def test_exact_match_on_gsm8k_references():
    references = ["Step one. 2 + 2 = 4\n#### 4", "It is 1,000 + 250\n#### 1,250", "#### -3"]
    predictions = ["The answer is: 4", "I think it's $1,250.00.", "The answer is 3"]
    assert gsm8k_exact_match(predictions, references) == pytest.approx(2 / 3)


def test_exact_match_counts_missing_answers_as_wrong():
    assert gsm8k_exact_match(["I don't know"], ["#### 5"]) == 0.0


def test_exact_match_validates_inputs():
    with pytest.raises(ValueError):
        gsm8k_exact_match(["1"], ["#### 1", "#### 2"])
    with pytest.raises(ValueError):
        gsm8k_exact_match([], [])
    with pytest.raises(ValueError):
        gsm8k_exact_match(["1"], ["no number"])
