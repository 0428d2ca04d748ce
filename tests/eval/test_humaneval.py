"""Sandboxed HumanEval harness: correctness of scoring and isolation of untrusted samples."""

import os
import textwrap

import pytest

from goat.eval.humaneval import clean_completion, evaluate_humaneval, load_problems, run_program

FAST = {"timeout_s": 5.0, "workers": 2, "progress": False}


@pytest.fixture(scope="module")
def problems():
    return load_problems()


def _with_import_statement(problem, statement):
    """A correct completion (full definition) that first runs ``statement`` at import time."""
    return "\n" + statement + "\n" + problem["prompt"] + problem["canonical_solution"]


def test_bundled_problems_load(problems):
    assert len(problems) == 164
    assert {"prompt", "canonical_solution", "test", "entry_point"} <= set(problems["HumanEval/0"])


def test_canonical_solutions_all_pass(problems):
    # The completions repeat the prompt, as a chat model would; clean_completion strips it.
    completions = {
        task_id: clean_completion(p["prompt"], p["prompt"] + p["canonical_solution"])
        for task_id, p in problems.items()
    }
    report = evaluate_humaneval(completions, **FAST)
    failures = {k: v["detail"] for k, v in report["results"].items() if not v["passed"]}
    assert failures == {}
    assert report["passed"] == report["total"] == 164
    assert report["pass@1"] == 1.0


def test_wrong_solutions_score_zero(problems):
    task_ids = list(problems)[:6]
    report = evaluate_humaneval({t: "    return None\n" for t in task_ids}, **FAST)
    assert report["pass@1"] == 0.0
    assert all(r["status"] == "failed" for r in report["results"].values())


def test_hanging_sample_fails_only_itself(problems):
    ids = ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    completions = {t: problems[t]["canonical_solution"] for t in ids}
    completions["HumanEval/1"] = "    while True:\n        pass\n"
    report = evaluate_humaneval(completions, timeout_s=2.0, workers=2, progress=False)
    results = report["results"]
    assert results["HumanEval/1"]["status"] == "timeout"
    assert not results["HumanEval/1"]["passed"]
    assert results["HumanEval/0"]["passed"] and results["HumanEval/2"]["passed"]
    assert report["passed"] == 2


@pytest.mark.parametrize(
    "statement",
    [
        "import os; os._exit(0)",
        "import sys; sys.exit(0)",
        "raise SystemExit(0)",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        "import os, sys; sys.stdout.write('x' * 10); os.write(1, b'fake'); os._exit(0)",
    ],
)
def test_exiting_at_import_does_not_pass(problems, statement):
    task = "HumanEval/0"
    report = evaluate_humaneval({task: _with_import_statement(problems[task], statement)}, **FAST)
    assert report["results"][task]["passed"] is False
    # The same code without the exit passes, so the failure is due to the exit alone.
    control = evaluate_humaneval({task: _with_import_statement(problems[task], "pass")}, **FAST)
    assert control["results"][task]["passed"] is True


def test_parent_environment_is_not_visible(problems, monkeypatch):
    monkeypatch.setenv("GOAT_FAKE_SECRET", "hunter2")
    assert os.environ["GOAT_FAKE_SECRET"] == "hunter2"
    task = "HumanEval/0"
    sees_secret = "import os\nassert 'GOAT_FAKE_SECRET' not in os.environ\nassert 'hunter2' not in str(os.environ)"
    report = evaluate_humaneval({task: _with_import_statement(problems[task], sees_secret)}, **FAST)
    assert report["results"][task]["passed"] is True
    # Not vacuous: an assertion about a variable the child does get (PATH) is checked.
    has_path = "import os\nassert 'PATH' in os.environ\nassert 'HOME' in os.environ"
    report = evaluate_humaneval({task: _with_import_statement(problems[task], has_path)}, **FAST)
    assert report["results"][task]["passed"] is True


def test_sample_runs_in_a_fresh_temporary_directory():
    parent = os.getcwd()
    program = textwrap.dedent(
        f"""
        import os, sys
        assert os.getcwd() != {parent!r}
        assert sorted(os.listdir('.')) == ['sample.py', 'stderr.txt'], os.listdir('.')
        assert sys.stdin.read() == ''
        assert sys.flags.isolated == 1
        open('scratch.txt', 'w').write('ok')
        import dataclasses, pickle
        @dataclasses.dataclass
        class Point:
            x: int = 1
        assert pickle.loads(pickle.dumps(Point(3))) == Point(3)
        if __name__ == "__main__":
            raise RuntimeError("demo blocks must not run")
        """
    )
    result = run_program(program, timeout_s=5.0)
    assert result.passed, result.detail


def test_memory_limit_fails_the_sample():
    result = run_program("x = bytearray(4 * 1024 ** 3)\n", timeout_s=10.0, memory_mb=512)
    assert not result.passed
    assert "MemoryError" in result.detail


def test_failure_detail_reports_the_error():
    result = run_program("assert 1 == 2, 'boom'\n", timeout_s=5.0)
    assert not result.passed and result.status == "failed"
    assert "AssertionError: boom" in result.detail


def test_unknown_task_id_is_rejected():
    with pytest.raises(ValueError, match="unknown HumanEval task"):
        evaluate_humaneval({"HumanEval/999": "    pass\n"}, **FAST)


# --- clean_completion -------------------------------------------------------------------------


def _passes(problem, completion):
    report = evaluate_humaneval({problem["task_id"]: completion}, **FAST)
    return report["results"][problem["task_id"]]["passed"]


def test_clean_completion_strips_repeated_prompt(problems):
    p = problems["HumanEval/2"]
    cleaned = clean_completion(p["prompt"], p["prompt"] + p["canonical_solution"])
    assert cleaned.strip() == p["canonical_solution"].strip()


def test_clean_completion_chat_answer_with_fences(problems):
    p = problems["HumanEval/0"]
    function = p["prompt"].split("from typing import List\n", 1)[1] + p["canonical_solution"]
    chat = (
        "Sure! Here is the implementation:\n\n```python\n" + function + "```\n\n"
        "It compares every pair.\n\n```python\nprint(has_close_elements([1.0], 0.5))\n```\n"
    )
    cleaned = clean_completion(p["prompt"], chat)
    assert "```" not in cleaned and "Sure" not in cleaned
    assert _passes(p, cleaned)


def test_clean_completion_prompt_opened_fence_and_demo_code(problems):
    p = problems["HumanEval/2"]
    body_def = "def truncate_number(number: float) -> float:\n\treturn number % 1.0\n"
    generation = body_def + "\nprint(truncate_number(3.5))\n```\nThis works because ..."
    cleaned = clean_completion(p["prompt"], generation)
    assert "print(" not in cleaned and "\t" not in cleaned
    assert _passes(p, cleaned)


def test_clean_completion_body_with_docstring_at_column_zero(problems):
    p = problems["HumanEval/2"]
    generation = '"""Return the decimal part."""\nreturn number % 1.0\n'
    cleaned = clean_completion(p["prompt"], generation)
    assert cleaned == "    return number % 1.0\n"
    assert _passes(p, cleaned)


def test_clean_completion_unclosed_fence(problems):
    p = problems["HumanEval/2"]
    generation = "Here you go:\n```python\ndef truncate_number(number):\n    return number - int(number)\n"
    assert _passes(p, clean_completion(p["prompt"], generation))
