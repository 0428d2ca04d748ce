"""The adapter folder's file names and its record (``adapter_config.json`` or ``goat_adapter.json``),
read without its tensors: what :meth:`GoatConfig.from_pretrained` and :mod:`goat.adapters.io` share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
GOAT_RECORD_NAME = "goat_adapter.json"
FORMAT_VERSION = 2


def read_record(directory: str | Path) -> dict[str, Any]:
    """A saved adapter's record (``goat_config``, ``adapted_layers``, ...), in either format, without its tensors."""
    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_NAME}; pass the folder written by save_pretrained.")
    stock = (directory / GOAT_RECORD_NAME).is_file()
    record_file = directory / (GOAT_RECORD_NAME if stock else CONFIG_NAME)
    record = json.loads(record_file.read_text())
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{record_file}: adapter format {record.get('format_version')!r} is not {FORMAT_VERSION}; "
            "it was written by another version of goat — load it with that version and save it again."
        )
    return record
