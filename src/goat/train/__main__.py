"""``python -m goat.train <family> [--config FILE.yaml ...] [--print_config] [flags]``.

Errors in settings and while loading model and data (a bad flag or value, a YAML file that does not
parse, an unknown task or method, a missing dataset, an unreachable hub) are printed on one line
(exit 2); a diverged run prints one line naming the step and the learning rate (exit 3); any other
error during training is a bug and keeps its traceback. Until the run starts, whatever a library
prints goes to stderr, so ``--print_config`` and ``--help`` write only their text to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


def _entry_parser() -> argparse.ArgumentParser:
    from goat.train.settings import FlagParser

    parser = FlagParser(prog="python -m goat.train", add_help=False, allow_abbrev=False)
    parser.add_argument("family", nargs="?")
    parser.add_argument("--config", nargs="+", default=[])
    parser.add_argument("--print_config", "--print-config", action="store_true")
    parser.add_argument("--help_all", "--help-all", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from goat.train import help_cache

    if (stored_help := help_cache.lookup(args)) is not None:  # a --help answered before: no transformers import
        print(stored_help)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from goat.train.settings import help_text, print_config, resolve

    out = sys.stdout
    try:
        # transformers prints a line on importing its W&B integration under WANDB_MODE=offline: a log, not output
        with contextlib.redirect_stdout(sys.stderr):
            entry, rest = _entry_parser().parse_known_args(args)
            if entry.family is None or entry.family.startswith("-"):
                usage = help_cache.usage()
                print(usage, file=out)
                help_cache.store(args, usage)
                return 0 if rest and rest[0] in ("-h", "--help") else EXIT_USER_ERROR
            if entry.help_all or "-h" in rest or "--help" in rest:
                text = help_text(entry.family, rest, config_files=entry.config, show_all=entry.help_all)
                help_cache.store(args, text)
                print(text, file=out)
                return 0
            config = resolve(entry.family, rest, config_files=entry.config)
        if entry.print_config:
            print_config(config, out)
            return 0
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    # the trainer's stack (transformers' Trainer, datasets, the family's task stack) loads only for a run
    from goat.train.run_folder import RunAlreadyComplete
    from goat.train.runner import prepare, train
    from goat.train.trainer import DivergenceError

    try:
        prepared = prepare(config)
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
    finally:  # accelerate's end of a script: destroys torchrun's process group, whose gloo threads can otherwise
        prepared.trainer.accelerator.end_training()  # outlive the interpreter and abort it at exit (SIGABRT)
    if not prepared.trainer.is_world_process_zero():
        return 0
    best = summary["best"]
    smoke = " (smoke run of the code path, not a reproduction)" if summary["smoke"] else ""
    print(
        f"best epoch {summary['best_epoch']}{smoke}: "
        + ", ".join(f"{k}={v:.4f}" for k, v in best.items() if k != "epoch")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
