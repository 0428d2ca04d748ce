"""The SVD cache (goat.adapters.svd_cache): hits are bit-identical, skip the SVD, and survive concurrency."""

from __future__ import annotations

import copy
import threading

import torch

import goat
from goat.adapters import init as goat_init
from goat.adapters import svd_cache
from tests.conftest import ROBERTA_TARGETS, tiny_roberta


def thin_svd(weight: torch.Tensor) -> svd_cache.SvdFactors:
    return torch.linalg.svd(weight.float(), full_matrices=False)


class CountingSvd:
    """``torch.linalg.svd`` with a call counter."""

    def __init__(self) -> None:
        self.calls = 0
        self._svd = torch.linalg.svd

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._svd(*args, **kwargs)


def test_key_depends_on_bytes_shape_and_dtype() -> None:
    w = torch.randn(6, 4)
    assert svd_cache.weight_key(w) == svd_cache.weight_key(w.clone())
    assert svd_cache.weight_key(w) != svd_cache.weight_key(w + 1e-6)
    assert svd_cache.weight_key(w) != svd_cache.weight_key(w.reshape(4, 6))
    assert svd_cache.weight_key(w) != svd_cache.weight_key(w.double())
    assert svd_cache.weight_key(w.T) == svd_cache.weight_key(w.T.contiguous())


def test_hit_returns_identical_factors_without_a_second_svd(tmp_path, monkeypatch) -> None:
    counter = CountingSvd()
    monkeypatch.setattr(torch.linalg, "svd", counter)
    w = torch.randn(12, 7, dtype=torch.bfloat16)
    with svd_cache.caching(tmp_path) as cache:
        first = goat_init.svd_float32(w)
        second = goat_init.svd_float32(w)
    assert counter.calls == 1 and (cache.misses, cache.hits) == (1, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert [t.shape for t in second] == [(12, 7), (7,), (7, 7)]
    assert len(list(tmp_path.glob("*.safetensors"))) == 1 and not list(tmp_path.glob("*.tmp"))
    goat_init.svd_float32(w)  # outside the block: no cache, a fresh SVD
    assert counter.calls == 2


def test_get_goat_model_with_cache_equals_without_and_reuses_it(tmp_path, monkeypatch) -> None:
    base = tiny_roberta()
    config = goat.GoatConfig(method="goat", r=8, num_experts=4, target_modules=ROBERTA_TARGETS)
    reference = goat.get_goat_model(copy.deepcopy(base), config).state_dict()
    counter = CountingSvd()
    monkeypatch.setattr(torch.linalg, "svd", counter)
    cold = goat.get_goat_model(copy.deepcopy(base), config, svd_cache_dir=tmp_path).state_dict()
    layers = len(goat.find_target_layers(base, config))
    assert counter.calls == layers
    warm = goat.get_goat_model(copy.deepcopy(base), config, svd_cache_dir=tmp_path).state_dict()
    assert counter.calls == layers  # every SVD came from the cache
    for name, tensor in reference.items():
        assert torch.equal(tensor, cold[name]) and torch.equal(tensor, warm[name]), name


def test_unreadable_entry_is_recomputed_and_replaced(tmp_path) -> None:
    w = torch.randn(5, 5)
    cache = svd_cache.SvdCache(tmp_path)
    cache.path(svd_cache.weight_key(w)).write_bytes(b"truncated")
    U, S, Vh = cache.get_or_compute(w, thin_svd)
    assert cache.misses == 1
    assert torch.allclose(U @ torch.diag(S) @ Vh, w, atol=1e-5)
    assert cache.load(w) is not None


def test_concurrent_writers_leave_one_complete_entry(tmp_path) -> None:
    w = torch.randn(64, 32)
    errors: list[BaseException] = []

    def fill() -> None:
        try:
            svd_cache.SvdCache(tmp_path).get_or_compute(w, thin_svd)
        except BaseException as err:  # noqa: BLE001 - surfaced below
            errors.append(err)

    threads = [threading.Thread(target=fill) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(list(tmp_path.glob("*.safetensors"))) == 1 and not list(tmp_path.glob("*.tmp"))
    assert svd_cache.SvdCache(tmp_path).load(w) is not None
