"""An on-disk cache of the base weights' SVDs, so a base model is decomposed once per machine.

GOAT's initialisation (paper §3.2, eq. 13) needs the thin SVD ``W = U diag(S) Vh`` of every
adapted weight; so do MiLoRA and the authors' PiSSA. The SVD depends on the weight alone, so it is
the same for every run, seed and method on one base model. Opt in with::

    goat.get_goat_model(model, config, svd_cache_dir=svd_cache.default_cache_dir())  # from goat.adapters import svd_cache

or ``with goat.adapters.svd_cache.caching(directory): ...`` around any code that initialises adapters.

* Key: a BLAKE2b digest of the weight's bytes, shape and dtype (``weight_key``); a changed weight
  is a different entry, so a stale factorisation is never served.
* Entry: ``<directory>/<key>.safetensors`` with float32 ``U [m, h]``, ``S [h]``, ``Vh [h, n]``
  exactly as ``torch.linalg.svd`` returned them — a hit gives bit-identical factors.
  Disk use is about twice the float32 size of the weights.
* Writes go to a temporary file in the same folder and are moved into place with ``os.replace``,
  so concurrent writers (DDP ranks, parallel jobs) never expose a half-written entry.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

SvdFactors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # U, S, Vh
FORMAT = "goat-svd-v1"

_ACTIVE: contextvars.ContextVar[SvdCache | None] = contextvars.ContextVar("goat_svd_cache", default=None)


def default_cache_dir() -> Path:
    """``~/.cache/goat/svd``: the folder to pass when one cache per machine is wanted."""
    return Path.home() / ".cache" / "goat" / "svd"


def weight_key(weight: torch.Tensor) -> str:
    """Hex digest identifying ``weight`` by its bytes, shape and dtype."""
    data = weight.detach().contiguous().cpu()
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{FORMAT}|{tuple(data.shape)}|{data.dtype}|".encode())
    digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


class SvdCache:
    """Thin SVDs stored under ``directory``; ``hits``/``misses`` count lookups since creation."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def load(self, weight: torch.Tensor, key: str | None = None) -> SvdFactors | None:
        """The cached factors of ``weight`` on its device, or None when absent or unreadable."""
        path = self.path(key or weight_key(weight))
        if not path.is_file():
            return None
        try:
            tensors = load_file(str(path))
            U, S, Vh = tensors["U"], tensors["S"], tensors["Vh"]
        except (SafetensorError, KeyError, OSError) as err:
            logger.warning("ignoring unreadable SVD cache entry %s (%s); recomputing", path, err)
            return None
        m, n = weight.shape
        h = min(m, n)
        if U.shape != (m, h) or S.shape != (h,) or Vh.shape != (h, n):
            logger.warning("ignoring SVD cache entry %s with wrong shapes; recomputing", path)
            return None
        return U.to(weight.device), S.to(weight.device), Vh.to(weight.device)

    def store(self, weight: torch.Tensor, factors: SvdFactors, key: str | None = None) -> Path:
        """Write ``factors`` for ``weight`` atomically (temporary file + ``os.replace``)."""
        path = self.path(key or weight_key(weight))
        self.directory.mkdir(parents=True, exist_ok=True)
        U, S, Vh = (t.detach().float().cpu().contiguous() for t in factors)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({"U": U, "S": S, "Vh": Vh}, tmp, metadata={"format": FORMAT, "shape": str(tuple(weight.shape))})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def get_or_compute(self, weight: torch.Tensor, compute: Callable[[torch.Tensor], SvdFactors]) -> SvdFactors:
        """Cached factors of ``weight``; on a miss, ``compute(weight)`` and store the result."""
        key = weight_key(weight)
        cached = self.load(weight, key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        factors = compute(weight)
        self.store(weight, factors, key)
        return factors


def active_cache() -> SvdCache | None:
    """The cache set by the innermost :func:`caching` block, if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def caching(directory: str | Path | SvdCache | None) -> Iterator[SvdCache | None]:
    """Serve SVDs from ``directory`` inside the block; ``None`` leaves caching off."""
    if directory is None:
        yield None
        return
    cache = directory if isinstance(directory, SvdCache) else SvdCache(directory)
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)
