"""save_pretrained -> load_goat_model restores outputs on a fresh base without an SVD."""

from __future__ import annotations

import hashlib

import pytest
import torch

import goat
from goat.adapters.model import read_adapter
from tests.conftest import ROBERTA_TARGETS, tiny_roberta

METHODS = [
    "goat",
    "goat_plus",
    "molora",
    "hydralora",
    "adamole",
    "full_moe",
    "lora",
    "rslora",
    "dora",
    "pissa",
    "milora",
]


def _train_a_little(model: goat.GoatModel, inputs: dict) -> None:
    """One optimiser step plus noise, so every trainable tensor differs from its init."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    out = model(**inputs, labels=torch.tensor([0, 2]))
    (out.loss + 1e-3 * goat.balance_loss(model)).backward()
    optimizer.step()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 1e-3)
    model.eval()


@pytest.mark.parametrize("method", METHODS)
def test_round_trip_reproduces_outputs_without_svd(method, tmp_path, monkeypatch):
    inputs = {"input_ids": torch.randint(3, 100, (2, 9)), "attention_mask": torch.ones(2, 9, dtype=torch.long)}
    config = goat.GoatConfig(
        method=method,
        r=8,
        lora_alpha=16,
        num_experts=4,
        top_k=2,
        target_modules=ROBERTA_TARGETS,
        modules_to_save=["classifier"],
    )
    model = goat.get_goat_model(tiny_roberta(), config)
    _train_a_little(model, inputs)
    expected = model(**inputs).logits
    model.save_pretrained(tmp_path / "adapter")
    saved, _ = read_adapter(tmp_path / "adapter")
    assert saved["goat_config"]["method"] == method and (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    def no_svd(*args, **kwargs):
        raise AssertionError("load_goat_model must not recompute an SVD")

    monkeypatch.setattr(torch.linalg, "svd", no_svd)
    restored = goat.load_goat_model(tiny_roberta(), tmp_path / "adapter").eval()
    torch.testing.assert_close(restored(**inputs).logits, expected, atol=1e-5, rtol=1e-5)


def test_loading_never_writes_the_base_checkpoint(tmp_path):
    base_dir = tmp_path / "base"
    tiny_roberta().save_pretrained(base_dir)
    digest = lambda: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in base_dir.iterdir()}  # noqa: E731
    before = digest()
    from transformers import AutoModelForSequenceClassification

    config = goat.GoatConfig(r=8, num_experts=4, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"])
    model = goat.get_goat_model(AutoModelForSequenceClassification.from_pretrained(base_dir), config)
    model.save_pretrained(tmp_path / "adapter")
    goat.load_goat_model(AutoModelForSequenceClassification.from_pretrained(base_dir), tmp_path / "adapter")
    assert digest() == before


def test_saved_adapter_is_small_and_holds_w_res_factors(tmp_path):
    from safetensors.torch import load_file

    config = goat.GoatConfig(r=8, num_experts=4, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"])
    model = goat.get_goat_model(tiny_roberta(), config)
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "adapter_model.safetensors")
    assert not any("base_layer" in k or "embeddings" in k for k in state)
    assert state["roberta.encoder.layer.0.attention.self.query.residual_A"].shape == (8, 32)
    assert any(k.startswith("classifier.") for k in state)


def test_loading_onto_a_different_model_fails_clearly(tmp_path):
    config = goat.GoatConfig(r=8, num_experts=4, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"])
    goat.get_goat_model(tiny_roberta(layers=2), config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="different adapted layers"):
        goat.load_goat_model(tiny_roberta(layers=1), tmp_path)
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        goat.load_goat_model(tiny_roberta(), tmp_path / "missing")


def test_kasa_round_trip_reproduces_outputs(tmp_path):
    """KaSA is the documented exception: peft re-runs its base truncation SVD when the layer is built."""
    inputs = {"input_ids": torch.randint(3, 100, (2, 9)), "attention_mask": torch.ones(2, 9, dtype=torch.long)}
    config = goat.GoatConfig(method="kasa", r=8, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"])
    model = goat.get_goat_model(tiny_roberta(), config)
    _train_a_little(model, inputs)
    expected = model(**inputs).logits
    model.save_pretrained(tmp_path)
    restored = goat.load_goat_model(tiny_roberta(), tmp_path).eval()
    torch.testing.assert_close(restored(**inputs).logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["goat", "pissa", "molora", "lora", "full"])
def test_load_trained_state_restores_a_run_in_place(method, tmp_path):
    """Resuming: a freshly initialised model of the same config takes the saved run's tensors exactly."""
    inputs = {"input_ids": torch.randint(3, 100, (2, 9)), "attention_mask": torch.ones(2, 9, dtype=torch.long)}
    config = goat.GoatConfig(
        method=method,
        r=8,
        lora_alpha=16,
        num_experts=4,
        top_k=2,
        target_modules=ROBERTA_TARGETS,
        modules_to_save=["classifier"],
    )
    trained = goat.get_goat_model(tiny_roberta(), config)
    _train_a_little(trained, inputs)
    trained.save_pretrained(tmp_path / "ckpt")
    fresh = goat.get_goat_model(tiny_roberta(), config).eval()
    if method in ("goat", "pissa"):  # an init on other hardware: W_res differs slightly from the saved one
        for layer in fresh.adapted_layers().values():
            if method == "goat":
                layer.active.set_residual(layer.residual_A, 1.01 * layer.residual_B)
            else:
                A0, B0 = layer.initial_factors["default"]
                layer.set_initial_factors("default", A0, 1.01 * B0)
    assert not torch.allclose(fresh(**inputs).logits, trained(**inputs).logits)
    fresh.load_trained_state(tmp_path / "ckpt")
    torch.testing.assert_close(fresh(**inputs).logits, trained(**inputs).logits, atol=1e-5, rtol=1e-5)


def test_load_trained_state_refuses_another_configuration(tmp_path):
    config = goat.GoatConfig(r=8, num_experts=4, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"])
    goat.get_goat_model(tiny_roberta(), config).save_pretrained(tmp_path / "ckpt")
    other = goat.get_goat_model(
        tiny_roberta(),
        goat.GoatConfig(r=8, num_experts=2, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"]),
    )
    with pytest.raises(ValueError, match="another configuration"):
        other.load_trained_state(tmp_path / "ckpt")
