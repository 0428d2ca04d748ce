"""``python -m goat.train <family> [flags]``: one-line errors for the mistakes users make.

Errors raised while parsing flags and loading model and data (a bad flag, an unknown task or
method, a missing dataset, an unreachable hub) are printed on one line (exit 2); a diverged run
prints one line naming the step and the learning rate (exit 3); any other error during training
is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from goat.train.args import parse_args
    from goat.train.run_folder import RunAlreadyComplete
    from goat.train.runner import prepare, train
    from goat.train.trainer import DivergenceError

    try:
        prepared = prepare(parse_args(argv))
    except RunAlreadyComplete as done:
        print(f"{done} Best epoch: {(done.summary or {}).get('best')}")
        return 0
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        summary = train(prepared)
    except DivergenceError as error:
        if prepared.trainer.is_world_process_zero():
            print(f"error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    if not prepared.trainer.is_world_process_zero():
        return 0
    best = summary["best"]
    smoke = " (smoke run of the code path, not a reproduction)" if summary["smoke"] else ""
    print(f"best epoch {summary['best_epoch']}{smoke}: " + ", ".join(f"{k}={v:.4f}" for k, v in best.items() if k != "epoch"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
