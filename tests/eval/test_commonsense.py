"""Commonsense answer-label extraction and accuracy."""

import pytest

from goat.eval.commonsense import (
    COMMONSENSE_DATASETS,
    LABELS,
    canonical_dataset_name,
    commonsense_accuracy,
    extract_answer,
)


def test_eight_datasets_with_llm_adapters_labels():
    assert len(COMMONSENSE_DATASETS) == 8
    assert LABELS["boolq"] == ("true", "false")
    assert LABELS["piqa"] == ("solution1", "solution2")
    assert LABELS["hellaswag"] == tuple(f"ending{i}" for i in range(1, 5))
    assert LABELS["winogrande"] == ("option1", "option2")
    for name in ("social_i_qa", "ARC-Easy", "ARC-Challenge", "openbookqa"):
        assert LABELS[name] == tuple(f"answer{i}" for i in range(1, 6))


@pytest.mark.parametrize(
    "dataset, generated, expected",
    [
        ("boolq", "the correct answer is true", "true"),
        ("boolq", "The correct answer is FALSE.", "false"),
        ("boolq", "It is untrue", None),  # whole words only
        ("piqa", "the correct answer is solution2", "solution2"),
        ("social_i_qa", "answer3 because answer1 is wrong", "answer3"),  # first label wins
        ("ARC-Challenge", "Answer4", "answer4"),
        ("ARC-Easy", "answer6", None),  # not a valid label
        ("openbookqa", "the correct answer is answer2", "answer2"),
        ("hellaswag", "the correct answer is ending4", "ending4"),
        ("hellaswag", "the correct answer is ending5", None),
        ("winogrande", "the correct answer is option1", "option1"),
        ("piqa", "nothing useful", None),
    ],
)
def test_extract_answer(dataset, generated, expected):
    assert extract_answer(dataset, generated) == expected


def test_text_before_response_marker_is_ignored():
    generated = (
        "### Instruction:\nPlease choose: Answer format: answer1/answer2/answer3\n\n"
        "### Response:\nthe correct answer is answer2"
    )
    assert extract_answer("social_i_qa", generated) == "answer2"
    prompt_only = "### Instruction:\noptions answer1 answer2\n\n### Response:\nI am not sure"
    assert extract_answer("social_i_qa", prompt_only) is None


def test_aliases_and_case():
    assert canonical_dataset_name("arc_c") == "ARC-Challenge"
    assert canonical_dataset_name("ARC-EASY") == "ARC-Easy"
    assert canonical_dataset_name("siqa") == "social_i_qa"
    assert extract_answer("OBQA", "answer1") == "answer1"


def test_unknown_dataset_names_valid_ones():
    with pytest.raises(ValueError, match="boolq.*winogrande"):
        extract_answer("mmlu", "answer1")


def test_accuracy():
    generations = ["the correct answer is true", "the correct answer is true", "dunno"]
    assert commonsense_accuracy("boolq", generations, ["true", "false", "false"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        commonsense_accuracy("boolq", ["true"], [])
