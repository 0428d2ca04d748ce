"""Single-adapter baselines equal peft's own implementation (outputs and gradients)."""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import KasaConfig

import goat
from tests.conftest import TwoLayer

TARGETS = ["fc1", "fc2"]
PEFT_KWARGS = {
    "lora": {},
    "rslora": {"use_rslora": True},
    "dora": {"use_dora": True},
    "pissa": {"init_lora_weights": "pissa"},
    "kasa": {"kasa_config": KasaConfig()},
}


def _lora_tensors(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Adapter parameters keyed by a name common to both wrappers."""
    out = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            out[name.removeprefix("base_model.model.").removeprefix("model.")] = param  # peft's prefix, GoatModel's
    return out


def _perturb_b(params: dict[str, torch.nn.Parameter]) -> None:
    """Make B non-zero identically in both models so that the adapter path is exercised."""
    gen = torch.Generator().manual_seed(11)
    for name in sorted(params):
        if "lora_B" in name:
            params[name].data = torch.randn(params[name].shape, generator=gen) * 0.1


@pytest.mark.parametrize("method", sorted(PEFT_KWARGS))
def test_single_adapter_matches_peft(method):
    ours = goat.get_goat_model(
        TwoLayer(), goat.GoatConfig(method=method, r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, seed=5)
    )
    reference_base = TwoLayer()
    torch.manual_seed(5)  # peft draws lora_A from the global RNG; ours seeds it from config.seed
    reference = get_peft_model(
        reference_base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, **PEFT_KWARGS[method])
    )
    ours_params, ref_params = _lora_tensors(ours), _lora_tensors(reference)
    assert ours_params.keys() == ref_params.keys()
    for name in ours_params:
        torch.testing.assert_close(ours_params[name], ref_params[name], msg=f"init of {name}")
    _perturb_b(ours_params)
    _perturb_b(ref_params)
    x = torch.randn(8, 40)
    out_ours, out_ref = ours(x), reference(x)
    torch.testing.assert_close(out_ours, out_ref)
    out_ours.square().sum().backward()
    out_ref.square().sum().backward()
    for name in ours_params:
        torch.testing.assert_close(ours_params[name].grad, ref_params[name].grad, msg=f"grad of {name}")


def test_rslora_scaling_is_alpha_over_sqrt_r():
    model = goat.get_goat_model(TwoLayer(), goat.GoatConfig(method="rslora", r=4, lora_alpha=8, target_modules=["fc1"]))
    assert model.adapted_layers()["fc1"].expert_scaling() == [pytest.approx(8 / math.sqrt(4))]


def test_numeric_scaling_reaches_peft():
    model = goat.get_goat_model(TwoLayer(), goat.GoatConfig(method="lora", r=4, scaling=3.0, target_modules=["fc1"]))
    assert model.adapted_layers()["fc1"].expert_scaling() == [pytest.approx(3.0)]


@pytest.mark.parametrize("authors", [False, True])
def test_milora_moves_the_minor_component(authors):
    base = TwoLayer()
    W0 = base.fc1.weight.detach().double().clone()
    config = goat.GoatConfig(method="milora", r=4, lora_alpha=8, target_modules=["fc1"], authors_svd_baselines=authors)
    layer = goat.get_goat_model(base, config).adapted_layers()["fc1"]
    U, S, Vh = torch.linalg.svd(W0, full_matrices=False)
    minor = (U[:, -4:] * S[-4:]) @ Vh[-4:]
    rho = 10.0 if authors else 1.0
    (A, B), s = layer.expert_factors()[0], layer.expert_scaling()[0]
    assert s == pytest.approx(2.0)  # alpha / r
    torch.testing.assert_close((s * B @ A).double(), minor / rho, atol=1e-5, rtol=1e-4)
    # the frozen base keeps W0; the moved part is the frozen path W_res = s B0 A0, subtracted in the forward
    assert torch.equal(layer.get_base_layer().weight.double(), W0)
    torch.testing.assert_close((layer.residual_B @ layer.residual_A).double(), minor / rho, atol=1e-5, rtol=1e-4)


def test_authors_pissa_shrinks_by_rho_and_forces_s_2():
    base = TwoLayer()
    W0 = base.fc1.weight.detach().double().clone()
    config = goat.GoatConfig(method="pissa", r=4, lora_alpha=32, target_modules=["fc1"], authors_svd_baselines=True)
    layer = goat.get_goat_model(base, config).adapted_layers()["fc1"]
    U, S, Vh = torch.linalg.svd(W0, full_matrices=False)
    principal = (U[:, :4] * S[:4]) @ Vh[:4]
    (A, B), s = layer.expert_factors()[0], layer.expert_scaling()[0]
    assert s == pytest.approx(2.0)
    torch.testing.assert_close((s * B @ A).double(), principal / 10, atol=1e-5, rtol=1e-4)
    assert torch.equal(layer.get_base_layer().weight.double(), W0)
    torch.testing.assert_close((layer.residual_B @ layer.residual_A).double(), principal / 10, atol=1e-5, rtol=1e-4)


def test_full_fine_tuning_trains_everything():
    model = goat.get_goat_model(TwoLayer(), goat.GoatConfig(method="full"))
    trainable, total = model.trainable_parameter_count()
    assert trainable == total and model.adapted_layers() == {}


def test_kasa_regulariser_is_part_of_the_auxiliary_loss():
    model = goat.get_goat_model(TwoLayer(), goat.GoatConfig(method="kasa", r=4, target_modules=TARGETS))
    model(torch.randn(2, 40))
    assert goat.auxiliary_loss(model, 1e-3).item() > 0
