"""MT-Bench answer writer: FastChat format, two turns, turn 2 conditioned on answer 1."""

import json

import pytest

from goat.eval.mtbench import load_mtbench_questions, write_mtbench_answers

QUESTIONS = [
    {"question_id": 82, "category": "writing", "turns": ["Write a haiku about rain.", "Now make it about snow."]},
    {"question_id": 81, "category": "math", "turns": ["What is 2 + 3?", "Multiply that by 4."]},
]


@pytest.fixture
def question_file(tmp_path):
    path = tmp_path / "question.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n", encoding="utf-8")
    return path


class RecordingGenerator:
    """A fake model: records every prompt, answers with a unique string per call."""

    def __init__(self):
        self.prompts = []

    def __call__(self, prompts):
        answers = []
        for prompt in prompts:
            self.prompts.append(prompt)
            answers.append(f"ANSWER-{len(self.prompts)}")
        return answers


def test_answer_file_has_fastchat_fields_and_two_turns(question_file, tmp_path):
    answer_file = tmp_path / "model_answer" / "goat.jsonl"
    generate = RecordingGenerator()
    write_mtbench_answers(question_file, answer_file, generate, model_id="goat-test")
    lines = [json.loads(line) for line in answer_file.read_text(encoding="utf-8").splitlines()]
    assert [line["question_id"] for line in lines] == [81, 82]  # sorted like FastChat
    for line in lines:
        assert set(line) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert line["model_id"] == "goat-test"
        assert isinstance(line["answer_id"], str) and line["answer_id"]
        assert isinstance(line["tstamp"], float)
        assert len(line["choices"]) == 1 and line["choices"][0]["index"] == 0
        assert len(line["choices"][0]["turns"]) == 2
    assert len({line["answer_id"] for line in lines}) == 2


def test_second_turn_prompt_contains_first_answer(question_file, tmp_path):
    generate = RecordingGenerator()
    records = write_mtbench_answers(question_file, tmp_path / "a.jsonl", generate, model_id="m")
    by_id = {record["question_id"]: record["choices"][0]["turns"] for record in records}
    assert len(generate.prompts) == 4
    for question in QUESTIONS:
        first_answer, second_answer = by_id[question["question_id"]]
        second_prompt = next(p for p in generate.prompts if question["turns"][1] in p)
        assert first_answer in second_prompt
        assert question["turns"][0] in second_prompt
        assert second_prompt.index(first_answer) < second_prompt.index(question["turns"][1])
        assert second_prompt.rstrip().endswith("### Response:")
        assert second_answer not in second_prompt
        first_prompt = next(p for p in generate.prompts if question["turns"][0] in p and question["turns"][1] not in p)
        assert "ANSWER" not in first_prompt


def test_missing_question_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"fastchat/llm_judge/data/mt_bench/question\.jsonl"):
        load_mtbench_questions(tmp_path / "nope.jsonl")


def test_generate_fn_must_answer_every_prompt(question_file, tmp_path):
    with pytest.raises(ValueError, match="answers for"):
        write_mtbench_answers(question_file, tmp_path / "a.jsonl", lambda prompts: ["x"], model_id="m")
