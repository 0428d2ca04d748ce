"""A saved adapter folder works on another machine (issue 19): the base is recorded as a portable identity,
never a path of this machine, and the model card's code runs as written."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import goat
from goat.adapters.card import portable_base_id
from goat.tasks.embedded import causal_cache_root, embedded_model_path, resolve_model_path

INPUTS = {"input_ids": torch.randint(3, 1000, (2, 9), generator=torch.Generator().manual_seed(0))}


def test_portable_base_id(tmp_path):
    snapshot = tmp_path / "hub" / "models--HuggingFaceTB--SmolLM2-135M" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    assert portable_base_id("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    assert portable_base_id(str(snapshot)) == "HuggingFaceTB/SmolLM2-135M"
    assert portable_base_id(str(embedded_model_path())) == "embedded"
    assert portable_base_id(str(causal_cache_root() / "smollm2-135m-instruct")) == "embedded"
    assert portable_base_id(str(tmp_path)) is None and portable_base_id(None) is None


def _embedded_classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(resolve_model_path("embedded"), num_labels=3).eval()


@pytest.mark.parametrize("method", ["goat", "lora"])
def test_the_model_card_code_runs_as_written(method, tmp_path, monkeypatch):
    config = goat.GoatConfig(
        method=method,
        r=8,
        num_experts=4,
        lora_dropout=0.0,
        target_modules=["query", "value"],
        modules_to_save=["classifier"],
    )
    model = goat.get_goat_model(_embedded_classifier(), config)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    expected = model.eval()(**INPUTS).logits
    folder = tmp_path / "adapter"
    model.save_pretrained(folder)
    machine_path = str(embedded_model_path().parent)
    for name in ("adapter_config.json", "README.md", "goat_adapter.json"):
        if (folder / name).exists():
            assert machine_path not in (folder / name).read_text(), name
    card = (folder / "README.md").read_text()
    tags = re.search(r"tags:\n((?:- .*\n)+)", card).group(1).split()
    assert len(tags) == 2 * len(set(tags) - {"-"})  # no tag twice
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    monkeypatch.chdir(folder)  # the card speaks of the folder it is in
    scope: dict = {}
    exec(code, scope)  # noqa: S102 (the card's own snippet, as a user would paste it)
    loaded = scope["model"].eval()
    torch.testing.assert_close(loaded(**INPUTS).logits, expected, atol=1e-5, rtol=1e-5)
