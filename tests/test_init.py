"""Expert initialisation against the paper's formulas (eq. 13, 19; Thm 3.4, 3.5; App. D, E.3)."""

from __future__ import annotations

import math

import pytest
import torch

import goat
from goat.adapters.init import segment_starts


def _layer(model: goat.GoatModel, name: str):
    return model.adapted_layers()[name]


def _segment(U, S, Vh, start: int, d: int) -> torch.Tensor:
    return (U[:, start : start + d] * S[start : start + d]) @ Vh[start : start + d]


@pytest.mark.parametrize(
    "init, expected",
    [
        # h = 24, E = 4, d = 2, t = 6
        ("spread", [0, 6, 12, 18]),  # O: k = (j-1) t
        ("principal", [0, 2, 4, 6]),  # P: k = (j-1) d
        ("minor", [22, 20, 18, 16]),  # M: k = h - j d
    ],
)
def test_segment_starts_follow_appendix_e3(init, expected):
    assert segment_starts(24, 2, 4, init) == expected


def test_random_segments_are_distinct_aligned_and_seeded():
    draw = lambda seed: segment_starts(24, 2, 4, "random", torch.Generator().manual_seed(seed))  # noqa: E731
    starts = draw(3)
    assert len(set(starts)) == 4 and all(k % 2 == 0 and 0 <= k <= 22 for k in starts)
    assert starts == draw(3)
    assert any(draw(s) != starts for s in range(4, 10))


@pytest.mark.parametrize("init", ["spread", "principal", "minor"])
def test_expert_factors_equal_svd_segments_over_rho(two_layer, init):
    W0 = two_layer.fc1.weight.detach().double().clone()  # [24, 40]
    config = goat.GoatConfig(method="goat", r=8, num_experts=4, top_k=2, init=init, target_modules=["fc1"])
    layer = _layer(goat.get_goat_model(two_layer, config), "fc1")
    U, S, Vh = torch.linalg.svd(W0, full_matrices=False)
    starts = segment_starts(24, 2, 4, init)
    s = math.sqrt(3 * 40 * 1.0 / 2)  # Thm 3.5 with n = 40, eta = 1, d = 2
    assert layer.expert_scaling() == pytest.approx([s] * 4)
    for (A, B), k in zip(layer.expert_factors(), starts):
        assert A.shape == (2, 40) and B.shape == (24, 2)
        # eq. 19: s B A = U' S' V'^T / rho, and each factor carries sqrt(sigma / (s rho))
        torch.testing.assert_close((s * B @ A).double(), _segment(U, S, Vh, k, 2) / 10, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(A.double().norm(dim=1), (S[k : k + 2] / (s * 10)).sqrt(), atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(B.double().norm(dim=0), (S[k : k + 2] / (s * 10)).sqrt(), atol=1e-6, rtol=1e-4)


def test_w_res_is_the_theorem_3_4_residual_and_w0_stays_frozen(two_layer):
    """W_res = (1/E) sum_j s_j B_j A_j (Thm 3.4) as a frozen path; the base weight keeps W0 bit for bit."""
    W0 = two_layer.fc1.weight.detach().clone()
    config = goat.GoatConfig(method="goat", r=8, num_experts=4, top_k=2, target_modules=["fc1"])
    layer = _layer(goat.get_goat_model(two_layer, config), "fc1")
    w_res = sum(s * B.double() @ A.double() for (A, B), s in zip(layer.expert_factors(), layer.expert_scaling())) / 4
    torch.testing.assert_close((layer.residual_B @ layer.residual_A).double(), w_res, atol=1e-6, rtol=1e-5)
    assert torch.equal(layer.base_layer.weight, W0)


def test_residual_factors_multiply_to_the_weighted_expert_mean():
    """init.residual_factors: B_res @ A_res = (1/E) sum_j s_j B_j A_j, rank E*d."""
    from goat.adapters.init import residual_factors

    A, B, s = torch.randn(3, 2, 7), torch.randn(3, 5, 2), torch.tensor([0.5, 2.0, 3.0])
    A_res, B_res = residual_factors(A, B, s)
    assert A_res.shape == (6, 7) and B_res.shape == (5, 6)
    expected = sum(s[j] * B[j] @ A[j] for j in range(3)) / 3
    torch.testing.assert_close(B_res @ A_res, expected)


def test_svd_runs_in_float32_for_bfloat16_models(two_layer):
    two_layer = two_layer.to(torch.bfloat16)
    W0 = two_layer.fc1.weight.detach().float().clone()
    config = goat.GoatConfig(method="goat", r=8, num_experts=4, top_k=2, target_modules=["fc1"], lora_dropout=0)
    layer = _layer(goat.get_goat_model(two_layer, config), "fc1")
    assert layer.lora_A.dtype == torch.float32 and layer.base_layer.weight.dtype == torch.bfloat16
    U, S, Vh = torch.linalg.svd(W0, full_matrices=False)
    s = layer.expert_scaling()[0]
    A, B = layer.expert_factors()[1]
    torch.testing.assert_close(s * B @ A, _segment(U, S, Vh, 6, 2) / 10, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "rule, expected",
    [("theory", math.sqrt(3 * 40 * 2.0 / 2)), ("alpha", 16 / 2), ("rs", 16 / math.sqrt(2)), (5.0, 5.0)],
)
def test_scaling_rules_use_the_expert_rank(two_layer, rule, expected):
    config = goat.GoatConfig(
        method="goat", r=8, lora_alpha=16, num_experts=4, eta=2.0, scaling=rule, target_modules=["fc1"]
    )
    layer = _layer(goat.get_goat_model(two_layer, config), "fc1")
    assert layer.expert_scaling() == pytest.approx([expected] * 4)


def test_goat_plus_scalings_follow_appendix_d(two_layer):
    W0 = two_layer.fc1.weight.detach().double().clone()
    config = goat.GoatConfig(method="goat_plus", r=8, num_experts=4, top_k=2, target_modules=["fc1"])
    layer = _layer(goat.get_goat_model(two_layer, config), "fc1")
    S = torch.linalg.svdvals(W0)
    sigma = torch.stack([S[k : k + 2].sum() for k in (0, 6, 12, 18)])  # segment sums for d > 1
    s1 = math.sqrt(3 * 40 / 2)
    expected = s1 * (sigma[0] / sigma).sqrt()  # eq. 83
    assert layer.expert_scaling() == pytest.approx(expected.tolist(), rel=1e-5)
    assert layer.expert_scaling()[0] == pytest.approx(s1)
    U, S_, Vh = torch.linalg.svd(W0, full_matrices=False)
    for (A, B), s, k in zip(layer.expert_factors(), layer.expert_scaling(), (0, 6, 12, 18)):
        torch.testing.assert_close((s * B @ A).double(), _segment(U, S_, Vh, k, 2) / 10, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["molora", "hydralora", "adamole"])
def test_zero_init_methods_start_at_the_base_model(two_layer, method):
    W0 = two_layer.fc1.weight.detach().clone()
    x = torch.randn(7, 40)
    reference = two_layer(x)
    config = goat.GoatConfig(method=method, r=8, num_experts=4, top_k=2, target_modules=["fc1"])
    model = goat.get_goat_model(two_layer, config)
    layer = _layer(model, "fc1")
    assert torch.equal(layer.base_layer.weight, W0)
    assert all(torch.count_nonzero(B) == 0 for _, B in layer.expert_factors())
    bound = 1 / math.sqrt(40)  # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(n), 1/sqrt(n))
    assert all(A.abs().max() <= bound and A.std() > bound / 4 for A, _ in layer.expert_factors())
    torch.testing.assert_close(model(x), reference)


def test_goat_zero_init_has_no_svd_prior(two_layer):
    W0 = two_layer.fc1.weight.detach().clone()
    config = goat.GoatConfig(method="goat", init="zero", r=8, num_experts=4, target_modules=["fc1"])
    layer = _layer(goat.get_goat_model(two_layer, config), "fc1")
    assert torch.equal(layer.base_layer.weight, W0)
    assert all(torch.count_nonzero(B) == 0 for _, B in layer.expert_factors())


def test_hydralora_shares_one_a_across_heads(two_layer):
    config = goat.GoatConfig(method="hydralora", r=8, num_experts=4, target_modules=["fc1"])
    layer = _layer(goat.get_goat_model(two_layer, config), "fc1")
    factors = layer.expert_factors()
    assert all(A is factors[0][0] or torch.equal(A, factors[0][0]) for A, _ in factors)
    assert layer.lora_A.shape == (1, 2, 40)


def test_router_init_is_seeded(two_layer):
    from tests.conftest import TwoLayer

    def make(seed):
        return _layer(
            goat.get_goat_model(TwoLayer(), goat.GoatConfig(r=8, num_experts=4, seed=seed, target_modules=["fc1"])),
            "fc1",
        ).router.weight

    assert torch.equal(make(1), make(1))
    assert not torch.equal(make(1), make(2))


@pytest.mark.parametrize("method", ["goat", "molora", "hydralora", "adamole", "milora", "lora"])
def test_adapters_initialise_on_the_base_weights_device(method):
    """A base on another device than the CPU-side seed generator and scalings (``meta`` stands in for a GPU,
    and raises on a device mix as CUDA does) gets every adapter tensor, W_res included, on its device.
    (GOAT's first GPU run stopped here: W_res's expert weights s_j stayed on the CPU.)"""
    base = torch.nn.Sequential(torch.nn.Linear(12, 10), torch.nn.ReLU(), torch.nn.Linear(10, 12)).to("meta")
    config = goat.GoatConfig(method=method, r=4, num_experts=2, top_k=1, target_modules=["0", "2"])
    model = goat.get_goat_model(base, config)
    assert model(torch.zeros(3, 12, device="meta")).device.type == "meta"
    tensors = [t for _, t in model.named_parameters()] + [t for _, t in model.named_buffers()]
    for layer in model.adapted_layers().values():
        tensors += [
            t for t in (getattr(layer, "residual_A", None), getattr(layer, "residual_B", None)) if t is not None
        ]
    assert tensors and {t.device.type for t in tensors} == {"meta"}
