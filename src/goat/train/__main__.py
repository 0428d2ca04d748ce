"""``python -m goat.train <family> [flags]``: one-line errors for the mistakes users make.

Errors raised while parsing flags and loading model and data (a bad flag, an unknown task or
method, a missing dataset, an unreachable hub) are printed on one line; an error during training
is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

from goat.train.args import parse_args

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from goat.train.runner import prepare, train

    try:
        prepared = prepare(parse_args(argv))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = train(prepared)
    if not prepared.trainer.is_world_process_zero():
        return 0
    best = summary["best"]
    smoke = " (smoke run of the code path, not a reproduction)" if summary["smoke"] else ""
    print(f"best epoch {summary['best_epoch']}{smoke}: " + ", ".join(f"{k}={v:.4f}" for k, v in best.items() if k != "epoch"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
