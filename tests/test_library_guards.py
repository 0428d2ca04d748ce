"""Library misuse fails loudly and leaves the caller's model as it was (issue 10, item 6): adapting an
adapted model, loading an adapter that does not fit, a corrupted weights file, another base model."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

import goat
from goat.adapters.io import AdapterIntegrityError, base_fingerprint
from tests.conftest import ROBERTA_TARGETS, tiny_roberta

INPUTS = {
    "input_ids": torch.randint(3, 100, (2, 9), generator=torch.Generator().manual_seed(0)),
    "attention_mask": torch.ones(2, 9, dtype=torch.long),
}


def _config(method: str = "goat", **kwargs) -> goat.GoatConfig:
    settings = dict(r=8, num_experts=4, top_k=2, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"])
    return goat.GoatConfig(method=method, **{**settings, **kwargs})


def _saved(tmp_path, method: str = "goat") -> goat.GoatModel:
    model = goat.get_goat_model(tiny_roberta(), _config(method))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(tmp_path)
    return model


def _state(model: torch.nn.Module) -> dict:
    """Everything a failed call must leave as it was: values, module types, flags, mode."""
    return {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "flags": {n: p.requires_grad for n, p in model.named_parameters()},
        "types": {n: type(m) for n, m in model.named_modules()},
        "training": model.training,
        "save_guard": "save_pretrained" in vars(model),  # GoatModel's refusal to save an adapted base
    }


def _assert_untouched(model: torch.nn.Module, before: dict) -> None:
    after = _state(model)
    assert after["types"] == before["types"] and after["flags"] == before["flags"]
    assert after["training"] == before["training"] and after["params"].keys() == before["params"].keys()
    assert all(torch.equal(after["params"][n], before["params"][n]) for n in before["params"])
    assert after["save_guard"] == before["save_guard"]


def _rewrite_weights(folder, change) -> None:
    """Apply ``change`` to the saved tensors and record the new file's checksum (a consistent, wrong adapter)."""
    weights = folder / "adapter_model.safetensors"
    tensors = load_file(weights)
    change(tensors)
    save_file(tensors, weights)
    record_file = folder / ("goat_adapter.json" if (folder / "goat_adapter.json").exists() else "adapter_config.json")
    record = json.loads(record_file.read_text())
    record["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    record_file.write_text(json.dumps(record))


# ------------------------------------------------------------------ adapting twice
def test_get_goat_model_refuses_a_model_that_already_holds_adapters():
    from peft import LoraConfig, get_peft_model

    model = goat.get_goat_model(tiny_roberta(), _config())
    before = _state(model.get_base_model())
    with pytest.raises(ValueError, match=r"already a GoatModel.*add_adapter"):
        goat.get_goat_model(model, _config(target_modules=None))
    with pytest.raises(ValueError, match=r"already holds adapter layers \(12, .*add_adapter"):
        goat.get_goat_model(model.get_base_model(), _config(target_modules=None))
    _assert_untouched(model.get_base_model(), before)
    peft_model = get_peft_model(tiny_roberta(), LoraConfig(r=4, target_modules=["query"]))
    with pytest.raises(ValueError, match=r"holds peft adapter layers .*unload\(\)"):
        goat.get_goat_model(peft_model.base_model.model, _config())


# --------------------------------------------------------- a load that does not fit
def _edit_config(folder, **changes) -> None:
    path = folder / "adapter_config.json"
    record = json.loads(path.read_text())
    record["goat_config"].update(changes)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda f: _edit_config(f, num_experts=2, top_k=1), r"does not fit this model: .*wrong shapes"),
        (lambda f: _edit_config(f, r=16), r"does not fit this model: .*wrong shapes"),
        (lambda f: _edit_config(f, top_k=9), "top_k=9 must be between 1 and num_experts"),
        (lambda f: _edit_config(f, experts=8), "unknown GoatConfig fields"),
        (lambda f: _edit_config(f, target_modules=["query"]), "different adapted layers"),
        (lambda f: _rewrite_weights(f, lambda t: t.pop("roberta.encoder.layer.1.output.dense.lora_B")), r"missing \["),
        (lambda f: _rewrite_weights(f, lambda t: t.update(extra=torch.zeros(1))), r"unexpected \['extra'\]"),
        (
            lambda f: _rewrite_weights(f, lambda t: t.update({"classifier.dense.weight": torch.zeros(3, 3)})),
            "wrong shapes",
        ),
    ],
)
def test_a_failing_load_leaves_the_model_untouched(tmp_path, corrupt, message):
    _saved(tmp_path)
    corrupt(tmp_path)
    base = tiny_roberta()
    before = _state(base)
    with pytest.raises(ValueError, match=message):
        goat.load_goat_model(base, tmp_path)
    _assert_untouched(base, before)


def test_a_failing_load_onto_another_architecture_leaves_it_untouched(tmp_path):
    _saved(tmp_path)
    for other in (tiny_roberta(layers=1), tiny_roberta(hidden=64)):
        before = _state(other)
        with pytest.raises(ValueError, match="different adapted layers|does not fit|another base model"):
            goat.load_goat_model(other, tmp_path)
        _assert_untouched(other, before)


def test_a_failing_extra_adapter_load_leaves_the_goat_model_untouched(tmp_path):
    _saved(tmp_path)
    _edit_config(tmp_path, r=16)
    model = goat.get_goat_model(tiny_roberta(), _config())
    before, logits = _state(model.get_base_model()), model(**INPUTS).logits.detach()
    with pytest.raises(ValueError, match="wrong shapes"):
        goat.load_goat_model(model, tmp_path, adapter_name="second")
    _assert_untouched(model.get_base_model(), before)
    assert list(model.adapter_configs) == ["default"] and torch.equal(model(**INPUTS).logits, logits)


# ----------------------------------------------------------- checksum and fingerprint
@pytest.mark.parametrize("method", ["goat", "lora"])  # GOAT's format and stock PEFT's
def test_the_saved_record_holds_the_checksum_and_the_base_fingerprint(tmp_path, method):
    model = _saved(tmp_path, method)
    record = json.loads((tmp_path / ("adapter_config.json" if method == "goat" else "goat_adapter.json")).read_text())
    assert record["weights_sha256"] == hashlib.sha256((tmp_path / "adapter_model.safetensors").read_bytes()).hexdigest()
    fresh = base_fingerprint(tiny_roberta(), ["classifier"])
    assert record["base_fingerprint"] == fresh and fresh["tensors"] == 37  # classifier (modules_to_save) left out
    # taken from W0, which adapting and training never modify
    assert base_fingerprint(model.get_base_model(), ["classifier"]) == fresh


@pytest.mark.parametrize("method", ["goat", "lora"])
def test_flipped_bytes_in_the_weights_file_are_an_error(tmp_path, method, caplog):
    _saved(tmp_path, method)
    weights = tmp_path / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor's values
    weights.write_bytes(bytes(data))
    base = tiny_roberta()
    before = _state(base)
    with pytest.raises(AdapterIntegrityError, match=r"corrupted or was replaced: its SHA-256 .*strict=False"):
        goat.load_goat_model(base, tmp_path)
    _assert_untouched(base, before)
    with caplog.at_level(logging.WARNING, logger="goat.adapters.io"):
        goat.load_goat_model(base, tmp_path, strict=False)
    assert "corrupted or was replaced" in caplog.text


def test_another_base_model_of_the_same_shape_is_an_error(tmp_path, caplog):
    saved = _saved(tmp_path)
    other = tiny_roberta(seed=1)  # same architecture, other weights
    before = _state(other)
    with pytest.raises(AdapterIntegrityError, match="same names, shapes and dtypes but other values"):
        goat.load_goat_model(other, tmp_path)
    _assert_untouched(other, before)
    with caplog.at_level(logging.WARNING, logger="goat.adapters.io"):
        loaded = goat.load_goat_model(other, tmp_path, strict=False)
    assert "trained on another base model" in caplog.text
    assert torch.equal(
        loaded.adapter_state_dict()["classifier.dense.weight"], saved.adapter_state_dict()["classifier.dense.weight"]
    )


def test_another_dtype_is_named(tmp_path):
    _saved(tmp_path)
    with pytest.raises(
        AdapterIntegrityError, match="stored as {'bfloat16': 37}, the adapter was trained on {'float32': 37}"
    ):
        goat.load_goat_model(tiny_roberta().to(torch.bfloat16), tmp_path)


def test_a_freshly_initialised_head_does_not_count_as_another_base(tmp_path):
    """modules_to_save (a classifier head, randomly initialised on every from_pretrained) is in the adapter."""
    saved = _saved(tmp_path)
    base = tiny_roberta()
    torch.nn.init.normal_(base.classifier.dense.weight)
    loaded = goat.load_goat_model(base, tmp_path).eval()
    torch.testing.assert_close(loaded(**INPUTS).logits, saved.eval()(**INPUTS).logits, atol=1e-5, rtol=1e-5)


def test_resuming_checks_the_checksum_too(tmp_path):
    model = _saved(tmp_path)
    weights = tmp_path / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(AdapterIntegrityError, match="SHA-256"):
        model.load_trained_state(tmp_path)
