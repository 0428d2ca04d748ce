"""Commonsense answer-label extraction and accuracy."""

import pytest

from goat.eval.commonsense import (
    COMMONSENSE_DATASETS,
    LABELS,
    canonical_dataset_name,
    commonsense_accuracy,
    extract_answer,
    response_text,
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


PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\nPlease choose the correct answer to the question: ...\n\n"
    "Answer1: a Answer2: b Answer3: c\n\nAnswer format: answer1/answer2/answer3\n\n### Response:\n"
)
INVENTED_EXAMPLE = (
    "\n\n### Instruction:\nPlease choose the correct answer to the question: ...\n\n"
    "### Response:\nthe correct answer is answer3"
)


@pytest.mark.parametrize(
    "generated, expected",
    [
        # A continuation (what causal.py scores): the model's own "### Response:" ends its answer.
        ("the correct answer is answer2" + INVENTED_EXAMPLE, "answer2"),
        ("I am not sure." + "\n\n### Response:\nthe correct answer is answer3", None),
        # The prompt decoded along: the answer lies between the prompt's marker and the next one.
        (PROMPT + "the correct answer is answer1" + INVENTED_EXAMPLE, "answer1"),
        (PROMPT + "I am not sure.\n\n### Response:\nthe correct answer is answer3", None),
    ],
)
def test_response_is_cut_at_a_model_generated_response_marker(generated, expected):
    assert extract_answer("social_i_qa", generated) == expected


def test_response_text_segments():
    assert response_text("answer2\n### Response:\nanswer3") == "answer2\n"
    assert response_text(PROMPT + "answer1\n### Response:\nanswer3") == "\nanswer1\n"
    assert response_text(PROMPT + "answer1") == "\nanswer1"
    assert response_text("no marker at all") == "no marker at all"


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
