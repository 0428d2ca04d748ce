"""Experiment trackers: W&B (as in the paper), TensorBoard, or none."""

from __future__ import annotations

import logging
import os
import socket

logger = logging.getLogger(__name__)
REPORTERS = ("none", "wandb", "tensorboard")
WANDB_HOST = ("api.wandb.ai", 443)


def network_reachable(address: tuple[str, int] = WANDB_HOST, timeout_s: float = 2.0) -> bool:
    """True if a TCP connection to ``address`` opens within ``timeout_s``."""
    try:
        with socket.create_connection(address, timeout=timeout_s):
            return True
    except OSError:
        return False


def configure_reporter(report_to: list[str], *, project: str, main_process: bool = True) -> list[str]:
    """The Trainer ``report_to`` list (``none`` dropped); for W&B pick offline mode when the API is unreachable.

    An explicit ``WANDB_MODE`` set by the user is respected and never overridden.
    """
    unknown = [name for name in report_to if name not in REPORTERS]
    if unknown:
        raise ValueError(f"--report_to {unknown[0]!r} is unknown; choose from {', '.join(REPORTERS)}.")
    chosen = [name for name in report_to if name != "none"]
    if "wandb" in chosen:
        os.environ.setdefault("WANDB_PROJECT", project)
        if "WANDB_MODE" not in os.environ and not network_reachable():
            os.environ["WANDB_MODE"] = "offline"
            if main_process:
                logger.warning("W&B: no network to %s, logging offline (sync later with `wandb sync`).", WANDB_HOST[0])
    return chosen
