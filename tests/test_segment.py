"""`GoatConfig.segment`: a single LoRA initialised from a chosen SVD block (Fig. 1, eq. 2-3) or
from GOAT's O slices (Table 5, single-LoRA row)."""

from __future__ import annotations

import pytest
import torch

import goat
from tests.conftest import TwoLayer

R = 4  # fc1 is 24 x 40 (h = 24): segments 0..5


def _svd_part(weight: torch.Tensor, indices: list[int]) -> torch.Tensor:
    U, S, Vh = torch.linalg.svd(weight.double(), full_matrices=False)
    return U[:, indices] @ torch.diag(S[indices]) @ Vh[indices]


def _adapted(segment, r: int = R, **kwargs) -> tuple[torch.Tensor, goat.GoatModel]:
    base = TwoLayer()
    W0 = base.fc1.weight.detach().double().clone()
    config = goat.GoatConfig(method="pissa", r=r, segment=segment, lora_dropout=0.0, target_modules=["fc1"], **kwargs)
    return W0, goat.get_goat_model(base, config)


@pytest.mark.parametrize("segment", [0, 2, 5])
def test_segment_i_moves_block_i_into_the_adapter(segment):
    W0, model = _adapted(segment)
    layer = model.adapted_layers()["fc1"]
    (A, B), s = layer.expert_factors()[0], layer.expert_scaling()[0]
    block = _svd_part(W0, list(range(segment * R, (segment + 1) * R)))
    torch.testing.assert_close(s * B.double() @ A.double(), block, atol=1e-5, rtol=1e-4)  # eq. 3: s B A = U_i Σ_i V_iᵀ
    assert torch.equal(layer.get_base_layer().weight.double(), W0)  # W0 stays; W_res = block is a frozen path
    torch.testing.assert_close((layer.residual_B @ layer.residual_A).double(), block, atol=1e-5, rtol=1e-4)
    x = torch.randn(5, 40)
    torch.testing.assert_close(model(x), TwoLayer()(x), atol=1e-5, rtol=1e-4)  # output unchanged at init


def test_segment_zero_is_peft_pissa_and_last_is_milora():
    _, zero = _adapted(0)
    _, pissa = _adapted(None)
    for ours, ref in zip(
        zero.adapted_layers()["fc1"].expert_factors()[0], pissa.adapted_layers()["fc1"].expert_factors()[0]
    ):
        torch.testing.assert_close(ours.abs(), ref.abs(), atol=1e-5, rtol=1e-4)  # singular vectors up to sign
    _, last = _adapted(24 // R - 1)
    milora = goat.get_goat_model(
        TwoLayer(), goat.GoatConfig(method="milora", r=R, lora_dropout=0.0, target_modules=["fc1"])
    )
    for ours, ref in zip(
        last.adapted_layers()["fc1"].expert_factors()[0], milora.adapted_layers()["fc1"].expert_factors()[0]
    ):
        torch.testing.assert_close(ours, ref)


def test_spread_takes_goat_o_slices_as_one_lora():
    W0, model = _adapted("spread", r=4, num_experts=4)  # h = 24, E = 4: t = 6, d = 1 -> triplets 0, 6, 12, 18
    layer = model.adapted_layers()["fc1"]
    (A, B), s = layer.expert_factors()[0], layer.expert_scaling()[0]
    assert A.shape == (4, 40) and B.shape == (24, 4)
    torch.testing.assert_close(s * B.double() @ A.double(), _svd_part(W0, [0, 6, 12, 18]), atol=1e-5, rtol=1e-4)


def test_segment_survives_save_and_load(tmp_path):
    _, model = _adapted(3)
    model.save_pretrained(tmp_path)
    again = goat.load_goat_model(TwoLayer(), tmp_path)
    assert again.goat_config.segment == 3
    x = torch.randn(4, 40)
    torch.testing.assert_close(again(x), model(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "lora", "segment": 1}, "only applies to method='pissa'"),
        ({"method": "pissa", "segment": -1}, "block index >= 0"),
        ({"method": "pissa", "segment": "middle"}, "block index >= 0"),
        ({"method": "pissa", "segment": "spread", "r": 6, "num_experts": 4}, "dividing r"),
    ],
)
def test_invalid_segment_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        goat.GoatConfig(**kwargs)


def test_segment_beyond_the_spectrum_names_the_last_one():
    with pytest.raises(ValueError, match="the last segment is 5"):
        _adapted(6)


def test_cli_segment_reaches_the_config():
    from goat.train.settings import resolve

    def segment(text: str):
        return resolve("glue", ["--task", "rte", "--method", "pissa", "--segment", text]).adapter.segment

    assert segment("3") == 3 and segment("spread") == "spread"
    with pytest.raises(ValueError, match="block index"):
        segment("third")
