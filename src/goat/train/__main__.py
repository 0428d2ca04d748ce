"""``python -m goat.train <family> [flags]``: one-line errors for the mistakes users make."""

from __future__ import annotations

import logging
import sys

from goat.train.args import parse_args

# Errors whose message already says what is wrong and how to fix it: no traceback wall.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, OSError)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = parse_args(argv)
        from goat.train.runner import run

        summary = run(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    best = summary["best"]
    print(f"best epoch {summary['best_epoch']}: " + ", ".join(f"{k}={v:.4f}" for k, v in best.items() if k != "epoch"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
