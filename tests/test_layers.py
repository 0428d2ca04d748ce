"""MoE forward, routing, balance loss: checked against eq. 10-12, Lemma 3.3, Thm 3.4, App. B."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import goat
from goat.adapters.layers import Router


def _zero_routers(model: goat.GoatModel) -> None:
    for layer in model.adapted_layers().values():
        layer.router.weight.data.zero_()


@pytest.mark.parametrize("method", ["goat", "goat_plus"])
@pytest.mark.parametrize("init", ["spread", "principal", "minor", "random"])
def test_theorem_3_4_zeroed_router_with_all_experts_is_exactly_the_base(two_layer, method, init):
    """With w_i = 1/E for every token the equivalent weight is W0 - W_res + (s/E) sum B A = W0."""
    x = torch.randn(6, 5, 40)
    reference = two_layer(x)
    config = goat.GoatConfig(method=method, init=init, r=8, num_experts=4, top_k=4, lora_dropout=0.0)
    model = goat.get_goat_model(two_layer, config)
    _zero_routers(model)
    torch.testing.assert_close(model(x), reference, atol=1e-5, rtol=1e-5)


def test_top_k_routing_perturbs_the_output_per_token(two_layer):
    x = torch.randn(6, 40)
    reference = two_layer(x)
    model = goat.get_goat_model(two_layer, goat.GoatConfig(r=8, num_experts=4, top_k=1, lora_dropout=0.0))
    assert not torch.allclose(model(x), reference, atol=1e-4)


def test_forward_equals_explicit_sum_over_selected_experts(two_layer):
    """eq. 12: y = W' x + sum_i w_i(x) s_i B_i A_i x with w from eq. 10 (softmax over top-k logits),
    W' = W0 - W_res (eq. 15; W0 stays in the frozen layer, W_res is subtracted as its own path)."""
    config = goat.GoatConfig(method="goat_plus", r=8, num_experts=4, top_k=2, lora_dropout=0.0, target_modules=["fc1"])
    layer = goat.get_goat_model(two_layer, config).adapted_layers()["fc1"]
    torch.nn.init.normal_(layer.router.weight)
    x = torch.randn(9, 40)
    logits = x @ layer.router.weight.T
    top_logits, top_idx = logits.topk(2, dim=-1)
    weights = F.softmax(top_logits, dim=-1)  # eq. 10
    expected = layer.base_layer(x) - x @ (layer.residual_B @ layer.residual_A).T
    factors, scalings = layer.expert_factors(), layer.expert_scaling()
    for t in range(9):
        for slot in range(2):
            A, B = factors[top_idx[t, slot]]
            expected[t] += weights[t, slot] * scalings[top_idx[t, slot]] * (B @ (A @ x[t]))
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_gradients_with_the_residual_in_the_experts_product_equal_eq_12_by_autograd(two_layer):
    """The training forward folds -W_res x into the experts' second GEMM; its gradients for A, B and the
    router must be those of eq. 12 written out term by term (W_res frozen: it gets none)."""
    config = goat.GoatConfig(method="goat", r=8, num_experts=4, top_k=2, lora_dropout=0.0, target_modules=["fc1"])
    layer = goat.get_goat_model(two_layer, config).adapted_layers()["fc1"]
    torch.nn.init.normal_(layer.router.weight)
    x, upstream = torch.randn(7, 40), torch.randn(7, layer.out_features)
    params = [layer.lora_A, layer.lora_B, layer.router.weight]
    got = torch.autograd.grad((layer(x) * upstream).sum(), params)
    top_logits, top_idx = (x @ layer.router.weight.T).topk(2, dim=-1)
    weights = F.softmax(top_logits, dim=-1)
    expected = layer.base_layer(x) - x @ (layer.residual_B @ layer.residual_A).T
    factors, scalings = layer.expert_factors(), layer.expert_scaling()
    rows = []
    for t in range(7):
        row = expected[t]
        for slot in range(2):
            A, B = factors[top_idx[t, slot]]
            row = row + weights[t, slot] * scalings[top_idx[t, slot]] * (B @ (A @ x[t]))
        rows.append(row)
    want = torch.autograd.grad((torch.stack(rows) * upstream).sum(), params)
    for name, g, w in zip(("lora_A", "lora_B", "router"), got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5, msg=name)
    assert layer.residual_A.grad is None and not layer.residual_A.requires_grad


def test_gradients_reach_only_selected_experts_and_the_router(two_layer):
    config = goat.GoatConfig(r=8, num_experts=4, top_k=1, lora_dropout=0.0, target_modules=["fc1"])
    layer = goat.get_goat_model(two_layer, config).adapted_layers()["fc1"]
    x = torch.randn(1, 40)
    chosen = int((x @ layer.router.weight.T).argmax())
    layer(x).sum().backward()
    per_expert = layer.lora_B.grad.abs().sum(dim=(1, 2))
    assert per_expert[chosen] > 0 and per_expert.count_nonzero() == 1
    assert layer.base_layer.weight.grad is None
    assert layer.router.weight.grad is not None


def _router_on_logits(num_experts: int, top_k: int) -> Router:
    """A router whose logits equal its input (W_z = I), to feed i.i.d. logits directly."""
    router = Router(num_experts, num_experts, top_k, adaptive_threshold=False)
    router.weight.data = torch.eye(num_experts)
    return router


@pytest.mark.parametrize("E, k", [(8, 2), (8, 4), (6, 1)])
def test_lemma_3_3_moments_under_iid_logits(E, k):
    torch.manual_seed(0)
    router = _router_on_logits(E, k)
    n = 200_000
    # eq. 16 holds for any i.i.d. logits: E[w_i] = 1/E
    w = router(torch.randn(n, E) * 2.0)
    se = w.std(0).max() / n**0.5
    assert (w.mean(0) - 1 / E).abs().max() < 5 * se
    # eq. 17's proof takes E[y_i y_j / (sum y)^2] = 1/k^2 (equal weights inside the top-k):
    # exact as the logit spread vanishes, which is the regime tested here.
    w = router(torch.randn(n, E) * 1e-4)
    assert w.var(0).mean().item() == pytest.approx((E - k) / (k * E**2), rel=0.02)


def test_balance_loss_is_one_per_layer_under_uniform_routing(two_layer):
    model = goat.get_goat_model(two_layer, goat.GoatConfig(r=8, num_experts=4, top_k=4))
    _zero_routers(model)
    model(torch.randn(10, 40))
    assert goat.balance_loss(model).item() == pytest.approx(2.0)  # 2 adapted layers x 1


def test_balance_loss_matches_eq_26_to_28(two_layer):
    E, k, T = 4, 2, 50
    config = goat.GoatConfig(r=8, num_experts=E, top_k=k, target_modules=["fc1"])
    model = goat.get_goat_model(two_layer, config)
    router = model.adapted_layers()["fc1"].router
    torch.nn.init.normal_(router.weight)
    x = torch.randn(T, 40)
    model(x)
    probs = F.softmax(x @ router.weight.T, dim=-1)
    chosen = probs.topk(k, dim=-1).indices
    f = torch.stack([(chosen == i).any(-1).sum() for i in range(E)]).float() * E / (k * T)  # eq. 27
    P = probs.mean(0)  # eq. 28
    loss = goat.balance_loss(model)
    assert loss.item() == pytest.approx((f * P).sum().item(), rel=1e-5)  # eq. 26
    loss.backward()
    assert router.weight.grad.abs().sum() > 0  # P_i carries the gradient


def test_routing_stats_are_load_fractions_and_reset(two_layer):
    model = goat.get_goat_model(two_layer, goat.GoatConfig(r=8, num_experts=4, top_k=2))
    model(torch.randn(30, 40))
    stats = goat.routing_stats(model, reset=True)
    assert set(stats) == {"fc1", "fc2"}
    assert all(sum(v) == pytest.approx(1.0) and len(v) == 4 for v in stats.values())
    assert all(sum(v) == 0 for v in goat.routing_stats(model).values())


def test_balance_loss_needs_a_forward(two_layer):
    model = goat.get_goat_model(two_layer, goat.GoatConfig(r=8, num_experts=4))
    with pytest.raises(RuntimeError, match="forward"):
        goat.balance_loss(model)


def test_adamole_threshold_selects_experts_above_tau():
    E = 4
    router = Router(8, E, top_k=E, adaptive_threshold=True)
    torch.nn.init.normal_(router.weight)
    torch.nn.init.normal_(router.threshold.weight)
    x = torch.randn(64, 8)
    gates = router(x)
    probs = F.softmax(x @ router.weight.T, dim=-1)
    tau = torch.sigmoid(x @ router.threshold.weight.T) / E
    kept = (probs - tau).clamp_min(0)
    torch.testing.assert_close(gates, kept / kept.sum(-1, keepdim=True))
    assert (gates > 0).sum(-1).min() >= 1 and (gates > 0).sum(-1).float().std() > 0  # adaptive count


def test_full_moe_starts_at_the_base_and_trains_full_rank(two_layer):
    x = torch.randn(12, 40)
    reference = two_layer(x)
    model = goat.get_goat_model(two_layer, goat.GoatConfig(method="full_moe", num_experts=4, top_k=2))
    torch.testing.assert_close(model(x), reference, atol=1e-5, rtol=1e-5)
    layer = model.adapted_layers()["fc1"]
    assert layer.expert_weight.shape == (4, 24, 40) and layer.expert_weight.requires_grad


def test_bfloat16_base_keeps_float32_adapters_and_output_dtype(two_layer):
    model = goat.get_goat_model(two_layer.to(torch.bfloat16), goat.GoatConfig(r=8, num_experts=4))
    out = model(torch.randn(3, 40, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
    layer = model.adapted_layers()["fc1"]
    assert layer.lora_A.dtype == layer.router.weight.dtype == torch.float32
