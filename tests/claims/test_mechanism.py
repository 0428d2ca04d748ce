"""Claim 4's measurement against Lemma 2.2 written out by hand on a one-layer model.

The full fine-tuning gradient of expert i is computed here independently (the layer's output
gradient is a known matrix c, so g_i = Σ_t w_i(x_t) c_t x_tᵀ), and the equivalent gradient from the
closed form s² (B_i B_iᵀ g_i + g_i A_iᵀ A_i) of eq. 6; the module reads neither: it takes g_i from
hooks and g̃_i from autograd's G_A, G_B.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import goat
from goat.adapters.layers import LoraExperts
from goat.claims import mechanism


class OneLayer(nn.Module):
    def __init__(self, n: int = 16, m: int = 12) -> None:
        super().__init__()
        self.proj = nn.Linear(n, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


@pytest.mark.parametrize("init, scaling", [("zero", "theory"), ("spread", "theory"), ("spread", "alpha")])
def test_equivalent_and_full_gradients_match_lemma_2_2(init, scaling):
    torch.manual_seed(0)
    config = goat.GoatConfig(
        method="goat",
        r=4,
        lora_alpha=8,
        num_experts=2,
        top_k=1,
        init=init,
        scaling=scaling,
        lora_dropout=0.0,
        target_modules=["proj"],
    )
    model = goat.get_goat_model(OneLayer(), config)
    x, c = torch.randn(10, 16), torch.randn(10, 12)
    adapter = next(m for m in model.modules() if isinstance(m, LoraExperts))
    with mechanism.captured(model) as store:
        (model(x) * c).sum().backward()
        rows = mechanism.expert_alignments(model, store, eta=1.0)
    gates = adapter.router(x).detach()
    assert rows and {r.expert for r in rows} == {i for i in range(2) if (gates[:, i] > 0).any()}
    for row in rows:
        i, s = row.expert, row.scaling
        g = (c * gates[:, i : i + 1]).T @ x
        A, B = adapter.lora_A[i].detach(), adapter.lora_B[i].detach().T  # [d, n], [m, d]
        equivalent = s**2 * (B @ B.T @ g + g @ A.T @ A)
        assert row.norm_ratio == pytest.approx((equivalent.norm() / g.norm()).item(), rel=1e-4)
        cosine = (equivalent * g).sum() / (equivalent.norm() * g.norm())
        assert row.cosine == pytest.approx(cosine.item(), rel=1e-4, abs=1e-6)
        assert row.best_factor == pytest.approx(((equivalent * g).sum() / equivalent.norm() ** 2).item(), rel=1e-4)


def test_zero_init_under_theory_scaling_overshoots_by_about_sqrt_n_over_d():
    """The prediction claim 4 states: one draw of A gives ‖g̃‖/‖g‖ ≈ √(n/d) (E[AᵀA] = d/(3n) I only on average)."""
    torch.manual_seed(1)
    n, d = 256, 1
    config = goat.GoatConfig(
        method="goat",
        r=8,
        lora_alpha=16,
        num_experts=8,
        top_k=8,
        init="zero",
        lora_dropout=0.0,
        target_modules=["proj"],
    )
    model = goat.get_goat_model(OneLayer(n, 64), config)
    x, c = torch.randn(400, n), torch.randn(400, 64)
    with mechanism.captured(model) as store:
        (model(x) * c).sum().backward()
        rows = mechanism.expert_alignments(model, store, eta=1.0)
    median = sorted(r.norm_ratio for r in rows)[len(rows) // 2]
    assert 0.6 * math.sqrt(n / d) < median < 1.4 * math.sqrt(n / d)
