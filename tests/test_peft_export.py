"""Single-adapter methods are saved in stock PEFT format: peft, AutoPeftModel and transformers load them
with identical outputs, and merge_and_unload folds them into the base weights (issue 13, point 1)."""

from __future__ import annotations

import json

import pytest
import torch

import goat
from tests.conftest import ROBERTA_TARGETS, tiny_roberta
from tests.tiny_models import LLAMA_TARGETS, load_causal_lm, save_tiny_llama

SINGLE_METHODS = ["lora", "rslora", "dora", "pissa", "milora", "kasa"]
INPUTS = {
    "input_ids": torch.randint(3, 100, (2, 9), generator=torch.Generator().manual_seed(0)),
    "attention_mask": torch.ones(2, 9, dtype=torch.long),
}


def _perturb(model: goat.GoatModel, seed: int = 1) -> None:
    """Move every trainable tensor off its init, as training would (B included, so the adapter acts)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)


def _trained(method: str, **kwargs) -> goat.GoatModel:
    settings = dict(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"]
    )
    config = goat.GoatConfig(method=method, **{**settings, **kwargs})
    model = goat.get_goat_model(tiny_roberta(), config)
    _perturb(model)
    return model.eval()


@pytest.mark.parametrize(
    "method, kwargs",
    [(m, {}) for m in SINGLE_METHODS]
    + [("pissa", {"authors_svd_baselines": True}), ("pissa", {"segment": 1}), ("milora", {"scaling": "rs"})],
)
def test_stock_peft_loads_the_adapter_with_identical_outputs(method, kwargs, tmp_path):
    from peft import PeftModel

    model = _trained(method, **kwargs)
    expected = model(**INPUTS).logits
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "SEQ_CLS"
    # SVD priors are exported as PEFT exports PiSSA: rank 2r on the original weights
    assert config["r"] == (16 if method in ("pissa", "milora") else 8)
    stock = PeftModel.from_pretrained(tiny_roberta(), tmp_path).eval()
    torch.testing.assert_close(stock(**INPUTS).logits, expected, atol=1e-5, rtol=1e-5)


def test_peft_and_transformers_load_a_causal_lm_adapter(tmp_path):
    """A base in a local folder is recorded as unknown (no machine path: issue 19), so the base is passed in."""
    from peft import PeftModel

    base_dir = save_tiny_llama(tmp_path / "base")
    ids = torch.randint(0, 128, (2, 7), generator=torch.Generator().manual_seed(2))
    for method in ("lora", "pissa"):
        config = goat.GoatConfig(method=method, r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LLAMA_TARGETS)
        model = goat.get_goat_model(load_causal_lm(base_dir), config)
        _perturb(model)
        expected = model(input_ids=ids).logits
        model.save_pretrained(tmp_path / method)
        assert json.loads((tmp_path / method / "adapter_config.json").read_text())["base_model_name_or_path"] is None
        stock = PeftModel.from_pretrained(load_causal_lm(base_dir), tmp_path / method).eval()
        torch.testing.assert_close(stock(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)
        plain = load_causal_lm(base_dir)
        plain.load_adapter(str(tmp_path / method))  # transformers' own PEFT integration
        torch.testing.assert_close(plain(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", SINGLE_METHODS)
def test_merge_and_unload_folds_the_adapter_into_w0(method, tmp_path):
    from peft.tuners.tuners_utils import BaseTunerLayer

    from goat.adapters.layers import MOE_LAYER_TYPES

    model = _trained(method)
    expected = model(**INPUTS).logits
    merged = model.merge_and_unload()
    assert not any(isinstance(m, (*MOE_LAYER_TYPES, BaseTunerLayer)) for m in merged.modules())
    torch.testing.assert_close(merged(**INPUTS).logits, expected, atol=1e-5, rtol=1e-5)
    merged.save_pretrained(tmp_path)  # a plain transformers checkpoint of the fine-tuned model
    from transformers import RobertaForSequenceClassification

    again = RobertaForSequenceClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(again(**INPUTS).logits, expected, atol=1e-5, rtol=1e-5)


def test_stock_round_trip_through_goat_is_exact(tmp_path):
    """[A; A0], [B, -B0] is split back exactly: reloading a PiSSA adapter restores every tensor bit for bit."""
    model = _trained("pissa")
    model.save_pretrained(tmp_path)
    again = goat.load_goat_model(tiny_roberta(), tmp_path)
    saved, restored = model.adapter_state_dict(), again.adapter_state_dict()
    assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
