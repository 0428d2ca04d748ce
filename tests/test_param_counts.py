"""Trainable-parameter counts against App. F.1's formulas (RoBERTa shape, all attention + MLP linears).

H = hidden size, r = total rank, e = experts, L = layers. Per layer the six linears have
sum(in + out) = 18H and sum(in) = sum(out) = 9H.
"""

from __future__ import annotations

import pytest

import goat
from tests.conftest import ROBERTA_TARGETS, tiny_roberta

H, L, R, E = 32, 2, 8, 4


def _adapter_params(method: str) -> int:
    config = goat.GoatConfig(method=method, r=R, num_experts=E, top_k=2, target_modules=ROBERTA_TARGETS)
    model = goat.get_goat_model(tiny_roberta(hidden=H, layers=L), config)
    return model.trainable_parameter_count()[0]


@pytest.mark.parametrize(
    "method, formula",
    [
        ("lora", 18 * H * R * L),  # F.1 3: 18HrL
        ("pissa", 18 * H * R * L),
        ("milora", 18 * H * R * L),
        ("rslora", 18 * H * R * L),
        ("goat", (18 * H * R + 9 * H * E) * L),  # F.1 5: (18Hr + 9He)L
        ("molora", (18 * H * R + 9 * H * E) * L),
        ("goat_plus", (18 * H * R + 9 * H * E) * L),
        ("hydralora", (9 * H * R + 9 * H * E + 9 * H * R // E) * L),  # F.1 6
        ("adamole", (18 * H * R + 9 * H * E + 9 * H) * L),  # F.1 7
        # F.1 4 writes (18Hr + 6)L; DoRA's magnitude has one entry per output channel: + 9H per layer.
        ("dora", (18 * H * R + 9 * H) * L),
        # F.1 2 (weights + router): e copies of the 12H^2 weights and their 9H biases, router 9He.
        ("full_moe", (12 * E * H * H + 9 * E * H + 9 * H * E) * L),
    ],
)
def test_trainable_parameters_match_appendix_f1(method, formula):
    assert _adapter_params(method) == formula


def test_classifier_head_is_trained_in_full_and_never_adapted():
    config = goat.GoatConfig(r=R, num_experts=E, target_modules=None, modules_to_save=["classifier"])
    model = goat.get_goat_model(tiny_roberta(hidden=H, layers=L), config)
    assert not any(name.startswith("classifier") for name in model.adapted_layers())
    head = model.get_base_model().classifier
    assert all(p.requires_grad for p in head.parameters())
    head_params = sum(p.numel() for p in head.parameters())
    assert model.trainable_parameter_count()[0] == (18 * H * R + 9 * H * E) * L + head_params
