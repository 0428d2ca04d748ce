"""``--help`` read back from a cache, because building it is slow.

The help lists transformers' ``TrainingArguments`` flags, and importing that module imports peft
(transformers' trainer utilities load it when it is installed), which imports bitsandbytes: about
7 s on 2 cores, for a text that takes 30 ms to render. So the first ``--help`` of a configuration
builds the text and stores it under ``~/.cache/goat/help/``; every later one prints the stored text
without importing transformers.

The file name is a hash of everything the text depends on, so nothing stale is ever printed:

* the family (none: the usage line of a bare ``--help``), ``--task`` and, for each ``--config`` file, its absolute path and its bytes;
* the bytes of every file of the installed goat package (settings, help strings, YAML defaults);
* the versions of Python (argparse's layout) and transformers (its flags and help strings);
* the home folder (the SVD cache's default is under it) and the terminal width (argparse wraps to it).

Only ``--help`` is cached. ``--help_all`` also shows ``use_cpu``, whose default depends on whether a
GPU is visible, which this key cannot know without importing torch.

``python -m goat.train.help_cache`` fills the cache for every family and task (``scripts/setup.sh``
runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
from pathlib import Path

CACHE_DIR = Path.home() / ".cache" / "goat" / "help"
KEPT_ENTRIES = 256  # oldest entries beyond this are deleted on each store
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_PACKAGE_FILES = (".py", ".yaml", ".yml", ".json")


def _help_request(argv: list[str]) -> argparse.Namespace | None:
    """Family, task and config files of a plain ``--help`` request; None for anything else."""
    if "-h" not in argv and "--help" not in argv:
        return None
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("family", nargs="?")
    parser.add_argument("--config", nargs="+", default=[])
    parser.add_argument("--task")
    parser.add_argument("--help_all", "--help-all", action="store_true")
    try:
        request, _ = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):
        return None
    if request.family is None:  # the usage line, for a bare --help only (with other flags it is an error)
        return request if argv in (["-h"], ["--help"]) else None
    if request.help_all or request.family.startswith("-"):
        return None
    return request


def _package_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*")):
        if path.suffix in _PACKAGE_FILES:  # sources, not their bytecode
            digest.update(str(path.relative_to(_PACKAGE_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_key(argv: list[str]) -> str | None:
    """The cache entry's name for ``argv``; None when ``argv`` is no plain ``--help`` request, or when a
    ``--config`` file cannot be read (the live path then reports it)."""
    request = _help_request(argv)
    if request is None:
        return None
    try:
        transformers_version = importlib.metadata.version("transformers")
        configs = [(str(Path(name).resolve()), Path(name).read_bytes()) for name in request.config]
    except (OSError, importlib.metadata.PackageNotFoundError):
        return None
    digest = hashlib.sha256()
    for part in (
        request.family or "",
        request.task or "",
        *(f"{path}\0{content.hex()}" for path, content in configs),
        _package_digest(),
        sys.version,
        transformers_version,
        str(Path.home()),
        str(shutil.get_terminal_size().columns),
    ):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def lookup(argv: list[str]) -> str | None:
    """The stored help for ``argv``, or None (not a plain ``--help``, or not stored yet)."""
    key = cache_key(argv)
    if key is None:
        return None
    try:
        return (CACHE_DIR / f"{key}.txt").read_text()
    except (OSError, UnicodeDecodeError):
        return None


def store(argv: list[str], text: str) -> None:
    """Keep ``text`` as the help for ``argv``. A folder that cannot be written only costs speed."""
    key = cache_key(argv)
    if key is None:
        return
    part = None
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=CACHE_DIR, suffix=".part", delete=False) as part:
            part.write(text)
        os.replace(part.name, CACHE_DIR / f"{key}.txt")  # whole or absent, even with two processes at once
        entries = sorted(CACHE_DIR.glob("*.txt"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
        for stale in entries[KEPT_ENTRIES:]:
            stale.unlink(missing_ok=True)
    except OSError:
        if part is not None:
            Path(part.name).unlink(missing_ok=True)


def usage() -> str:
    """What ``python -m goat.train`` prints without a family."""
    from goat.train.families import FAMILIES

    return (
        f"usage: python -m goat.train {{{','.join(FAMILIES)}}} [--config FILE.yaml ...] [--print_config] [flags]\n"
        "       python -m goat.train <family> --help   (its settings and their defaults)"
    )


def fill() -> int:
    """Build and store the usage line and the help of every family, alone and with each of its tasks; the number
    stored."""
    from goat.train.families import FAMILIES
    from goat.train.settings import family_yaml, help_text

    store(["--help"], usage())
    stored = 1
    for family in FAMILIES:
        for task in [None, *(family_yaml(family).get("tasks") or {})]:
            argv = [family, *(["--task", task] if task else []), "--help"]
            store(argv, help_text(family, argv[1:]))
            stored += 1
    return stored


if __name__ == "__main__":
    print(f"stored {fill()} help texts (the usage line, each family alone and with each task) in {CACHE_DIR}")
