"""Loading pretrained models and tokenizers with one actionable error when they cannot be found."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from goat.tasks.errors import DataUnavailableError

Loaded = TypeVar("Loaded")


def load_pretrained(loader: Callable[..., Loaded], name_or_path: str, **kwargs: Any) -> Loaded:
    """``loader(name_or_path, **kwargs)`` (e.g. ``AutoModel.from_pretrained``), or a one-line error.

    transformers raises a multi-paragraph ``OSError`` for an unknown id, a missing local folder,
    a gated repository or an unreachable hub; this names the model and the ways forward.
    """
    try:
        return loader(name_or_path, **kwargs)
    except OSError as error:
        first_line = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise DataUnavailableError(
            f"cannot load {name_or_path!r} ({first_line.strip()}). Check the hub id or local folder; without "
            "network, download it elsewhere and pass the folder, or use the offline default --model_name_or_path embedded."
        ) from error
