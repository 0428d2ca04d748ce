"""MT-Bench answer generation in FastChat's answer-file format (the judging is FastChat's job).

The 80 questions are not shipped here. Get ``question.jsonl`` from the FastChat repository
(``fastchat/llm_judge/data/mt_bench/question.jsonl``, https://github.com/lm-sys/FastChat) and pass
its path. Each line is ``{"question_id", "category", "turns": [turn1, turn2]}``.

Each written line follows ``fastchat/llm_judge/gen_model_answer.py``::

    {"question_id": 81, "answer_id": "<random id>", "model_id": "<name>",
     "choices": [{"index": 0, "turns": ["<answer 1>", "<answer 2>"]}], "tstamp": 1700000000.0}

The file then feeds ``gen_judgment.py --model-list <model_id>`` (GPT-4 judge) in FastChat's
``data/mt_bench/model_answer/`` folder. Turn 2 is generated from a prompt holding turn 1's
question and this model's answer to it. One ``generate_fn`` serves every category (FastChat varies
the temperature per category; deterministic decoding here is our choice).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from goat.tasks.causal_lm import format_conversation

logger = logging.getLogger(__name__)

MTBENCH_QUESTIONS_HINT = (
    "download question.jsonl from the FastChat repository "
    "(https://github.com/lm-sys/FastChat, file fastchat/llm_judge/data/mt_bench/question.jsonl)"
)
EXPECTED_QUESTIONS = 80

GenerateFn = Callable[[list[str]], list[str]]
PromptFn = Callable[[Sequence[str], Sequence[str]], str]


def load_mtbench_questions(path: Union[str, Path]) -> list[dict[str, Any]]:
    """Read FastChat's MT-Bench ``question.jsonl`` (one JSON object per line).

    Raises ``FileNotFoundError`` saying where to get the file when ``path`` does not exist, and
    ``ValueError`` for a line without ``question_id`` or a non-empty ``turns`` list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MT-Bench questions not found at {path}: {MTBENCH_QUESTIONS_HINT}")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        question = json.loads(line)
        if "question_id" not in question or not question.get("turns"):
            raise ValueError(f"{path}:{number}: expected question_id and turns, got {sorted(question)}")
        questions.append(question)
    if len(questions) != EXPECTED_QUESTIONS:
        logger.warning("%s holds %d questions; MT-Bench has %d", path, len(questions), EXPECTED_QUESTIONS)
    return questions


def generate_answers(
    questions: Sequence[dict[str, Any]],
    generate_fn: GenerateFn,
    *,
    build_prompt: PromptFn = format_conversation,
) -> list[list[str]]:
    """Answer every turn of every question; turn k's prompt holds turns < k and their answers.

    ``generate_fn`` maps a list of prompts to a list of answers (one call per turn index, batched
    over questions). ``build_prompt(turns, answers)`` builds the prompt for ``turns[-1]``.
    Returns one list of answers per question.
    """
    answers: list[list[str]] = [[] for _ in questions]
    max_turns = max((len(q["turns"]) for q in questions), default=0)
    for turn_index in range(max_turns):
        active = [i for i, q in enumerate(questions) if len(q["turns"]) > turn_index]
        prompts = [build_prompt(questions[i]["turns"][: turn_index + 1], answers[i]) for i in active]
        outputs = generate_fn(prompts)
        if len(outputs) != len(prompts):
            raise ValueError(f"generate_fn returned {len(outputs)} answers for {len(prompts)} prompts")
        for i, output in zip(active, outputs):
            answers[i].append(output.strip())
    return answers


def answer_record(question_id: Any, model_id: str, turns: Sequence[str]) -> dict[str, Any]:
    """One FastChat answer-file record for a question's answered ``turns``."""
    return {
        "question_id": question_id,
        "answer_id": uuid.uuid4().hex[:22],
        "model_id": model_id,
        "choices": [{"index": 0, "turns": list(turns)}],
        "tstamp": time.time(),
    }


def write_mtbench_answers(
    question_file: Union[str, Path],
    answer_file: Union[str, Path],
    generate_fn: GenerateFn,
    *,
    model_id: str,
    build_prompt: PromptFn = format_conversation,
    question_limit: Optional[int] = None,
) -> list[dict[str, Any]]:
    """Answer MT-Bench and write FastChat's answer JSONL (sorted by ``question_id``) to ``answer_file``.

    ``question_limit`` keeps only the first questions (for smoke runs). Returns the records written.
    """
    questions = load_mtbench_questions(question_file)[:question_limit]
    answers = generate_answers(questions, generate_fn, build_prompt=build_prompt)
    records = [answer_record(q["question_id"], model_id, a) for q, a in zip(questions, answers)]
    records.sort(key=lambda record: record["question_id"])
    answer_file = Path(answer_file)
    answer_file.parent.mkdir(parents=True, exist_ok=True)
    with open(answer_file, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info("wrote %d MT-Bench answers to %s", len(records), answer_file)
    return records
