"""Lemma 2.2: the equivalent gradient from the adapter gradients equals s²(B Bᵀ g + g Aᵀ A)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import goat
from goat.studies.steps import equivalent_gradient_norm, expert_factors, low_rank_product_norm_sq


class OneLinear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("scaling", [2.0, 16.0])
def test_equivalent_gradient_matches_lemma_2_2(scaling):
    model = goat.get_goat_model(
        OneLinear(), goat.GoatConfig(method="pissa", r=3, scaling=scaling, lora_dropout=0.0, target_modules=["fc"])
    )
    layer = model.adapted_layers()["fc"]
    A, B = (t.detach().double() for t in layer.expert_factors()[0])
    x, target = torch.randn(7, 12), torch.randn(7, 10)
    ((model(x) - target) ** 2).sum().backward()
    # g: the full fine-tuning gradient dL/dW at the same equivalent weight W0 - W_res + sBA
    W_res = (layer.residual_B @ layer.residual_A).double()
    W = (layer.get_base_layer().weight.detach().double() - W_res + scaling * B @ A).requires_grad_(True)
    ((x.double() @ W.T + layer.get_base_layer().bias.double() - target.double()) ** 2).sum().backward()
    g = W.grad
    expected = scaling**2 * (B @ B.T @ g + g @ A.T @ A)  # eq. 6
    experts = expert_factors(model)
    grads = {id(p): p.grad for e in experts for p in (e.A, e.B)}
    assert equivalent_gradient_norm(experts, grads) == pytest.approx(expected.norm().item(), rel=1e-5)


def test_gram_norm_equals_dense_norm():
    X, Y = torch.randn(9, 4), torch.randn(4, 11)
    assert low_rank_product_norm_sq(X, Y).item() == pytest.approx(
        (X.double() @ Y.double()).norm().item() ** 2, rel=1e-9
    )


def test_moe_experts_are_read_per_expert_and_hydralora_is_refused():
    config = goat.GoatConfig(method="goat", r=4, num_experts=2, top_k=1, target_modules=["fc"])
    model = goat.get_goat_model(OneLinear(), config)
    experts = expert_factors(model)
    assert len(experts) == 2
    for expert, (A, B) in zip(experts, model.adapted_layers()["fc"].expert_factors()):
        got_A, got_B = expert.values()
        torch.testing.assert_close(got_A, A.detach())
        torch.testing.assert_close(got_B, B.detach())
    hydra = goat.get_goat_model(
        OneLinear(), goat.GoatConfig(method="hydralora", r=4, num_experts=2, top_k=1, target_modules=["fc"])
    )
    with pytest.raises(ValueError, match="hydralora"):
        expert_factors(hydra)
