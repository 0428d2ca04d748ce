"""The forward without autograd (evaluation, decoding) against the autograd forward it stands in for.

The decoding path of :class:`goat.adapters.layers.LoraExperts` and :meth:`Router.route` compute eq. 10
as a softmax over the top-k logits, apply the gates in place, and count the expert load and the
balance loss (App. B) only when read. Each test runs both paths on the same weights and inputs and
attacks what the shortcuts could get wrong: ties in the router logits, empty batches, weight edits
between forwards (``.data`` writes included), counts folded in batches, inference tensors reused in
training, and a router whose weight DeepSpeed ZeRO-3 has partitioned away.
"""

from __future__ import annotations

import copy

import pytest
import torch

import goat
from goat.adapters.layers import MoELinear, Router

METHODS = ("goat", "goat_plus", "molora", "hydralora", "adamole")


def adapted(two_layer, method: str, *, top_k: int = 2) -> goat.GoatModel:
    config = goat.GoatConfig(method=method, r=8, num_experts=4, top_k=top_k, lora_dropout=0.0)
    model = goat.get_goat_model(two_layer, config).eval()
    torch.manual_seed(1)
    for layer in model.adapted_layers().values():  # experts that matter (MoLoRA-style B starts at zero)
        torch.nn.init.normal_(layer.lora_B, std=0.3)
        torch.nn.init.normal_(layer.router.weight)
    return model


def routers(model: goat.GoatModel) -> list[Router]:
    return [m.active.router for m in model.modules() if isinstance(m, MoELinear) and m.active is not None]


def both_paths(model: goat.GoatModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(autograd forward, forward without autograd) of ``model`` in eval mode."""
    with_grad = model(x).detach()
    with torch.no_grad():
        without = model(x)
    return with_grad, without


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tokens", [1, 7, 0])
def test_no_grad_output_equals_the_autograd_output(two_layer, method, tokens):
    model = adapted(two_layer, method)
    with_grad, without = both_paths(model, torch.randn(tokens, 40))
    assert without.shape == (tokens, 16)
    torch.testing.assert_close(without, with_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_no_grad_counts_and_balance_loss_equal_the_autograd_ones(two_layer, method):
    """Over several forwards, and with the waiting selections folded every 3 forwards (attack on the
    batched counting), the load counts are identical and the balance loss equal to rounding."""
    eager, lazy = adapted(copy.deepcopy(two_layer), method), adapted(two_layer, method)
    for router in routers(lazy):
        router.max_uncounted = 3
    for step in range(7):
        x = torch.randn(5 + step, 40)
        eager(x)
        with torch.no_grad():
            lazy(x)
        assert all(len(r.record.uncounted) < 3 for r in routers(lazy))
        torch.testing.assert_close(goat.balance_loss(lazy), goat.balance_loss(eager).detach())
    for slow, fast in zip(routers(eager), routers(lazy), strict=True):
        assert torch.equal(fast.load_counts, slow.load_counts)
    assert sum(r.load_counts.sum().item() for r in routers(lazy)) > 0


def test_tied_router_logits_choose_the_same_experts_on_both_paths(two_layer):
    """A zero router makes every logit equal (and 1e-7 apart in a second run): top-k over logits
    (no autograd) and over probabilities (autograd) must still pick the same experts."""
    model = adapted(two_layer, "goat")
    for tie in (0.0, 1e-7):
        for router in routers(model):
            with torch.no_grad():
                router.weight.zero_()
                router.weight[1, 0] = tie
        with_grad, without = both_paths(model, torch.ones(3, 40))
        torch.testing.assert_close(without, with_grad, rtol=1e-5, atol=1e-6)
        goat.routing_stats(model, reset=True)
        with torch.no_grad():
            model(torch.ones(3, 40))
        chosen_without = [r.load_counts.clone() for r in routers(model)]
        goat.routing_stats(model, reset=True)
        model(torch.ones(3, 40))
        chosen_with = [r.load_counts.clone() for r in routers(model)]
        assert all(torch.equal(a, b) for a, b in zip(chosen_without, chosen_with, strict=True)), tie


def test_every_weight_edit_between_forwards_is_seen(two_layer):
    """Nothing is cached across forwards: edits in place, through ``.data``, by a new Parameter or a new
    W_res, made in eval mode between two no-grad forwards, all change the next output as they should."""
    model = adapted(two_layer, "goat")
    layer = model.adapted_layers()["fc1"]
    x = torch.randn(4, 40)
    edits = [
        lambda: layer.lora_B.data.mul_(2),
        lambda: layer.router.weight.data.copy_(torch.randn_like(layer.router.weight)),
        lambda: layer.scalings.data.mul_(3),
        lambda: setattr(layer.active, "lora_A", torch.nn.Parameter(torch.randn_like(layer.lora_A))),
        lambda: layer.active.set_residual(layer.residual_A * 2, layer.residual_B),
    ]
    for edit in edits:
        with torch.no_grad():
            before = model(x)
        edit()
        with_grad, without = both_paths(model, x)
        assert not torch.allclose(without, before)
        torch.testing.assert_close(without, with_grad, rtol=1e-5, atol=1e-6)


def test_counts_kept_under_inference_mode_feed_a_training_step(two_layer):
    """Selections recorded under ``torch.inference_mode`` (generation) are inference tensors; a training
    step after them must still count and backpropagate."""
    model = adapted(two_layer, "goat").train()
    with torch.inference_mode():
        model(torch.randn(3, 40))
    loss = model(torch.randn(2, 40)).sum() + goat.balance_loss(model)
    loss.backward()
    assert all(r.load_counts.sum().item() == 2 * (3 + 2) for r in routers(model))


def test_a_partitioned_router_weight_is_gathered_by_calling_the_router(two_layer):
    """DeepSpeed ZeRO-3 empties a module's parameters between forwards and gathers them in the module's
    forward pre-hook. The no-grad path must then call the router as a module, not read its weight."""
    model = adapted(two_layer, "goat")
    x = torch.randn(4, 40)
    with_grad, _ = both_paths(model, x)
    gathered = []
    for router in routers(model):
        full = router.weight.data.clone()
        router.weight.data = torch.empty(0)

        def gather(module, args, full=full):  # noqa: ANN001, ANN202
            module.weight.data = full
            gathered.append(module)

        router.register_forward_pre_hook(gather)
    with torch.no_grad():
        without = model(x)
    assert len(gathered) == 2
    torch.testing.assert_close(without, with_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_frozen_and_trainable_copies_compute_alike_in_one_grad_mode(two_layer, method):
    """The arithmetic depends on the grad mode only, not on whether parameters require grad: a loaded,
    frozen adapter reproduces the trained one bit for bit (attack: same weights, every parameter frozen)."""
    trainable = adapted(two_layer, method)
    frozen = copy.deepcopy(trainable).requires_grad_(False)
    x = torch.randn(6, 40)
    assert torch.equal(frozen(x), trainable(x).detach())
    with torch.no_grad():
        assert torch.equal(frozen(x), trainable(x))
