"""MoE adapters leave the base model exact: disable_adapter, unload, a guarded base, push_to_hub
(issue 13, point 2). The frozen weights are never modified, so exact means bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch

import goat
from tests.conftest import ROBERTA_TARGETS, tiny_roberta
from tests.tiny_models import LLAMA_TARGETS, load_causal_lm, save_tiny_llama

MOE_METHODS = ["goat", "goat_plus", "molora", "hydralora", "adamole", "full_moe"]
INPUTS = {
    "input_ids": torch.randint(3, 100, (2, 9), generator=torch.Generator().manual_seed(0)),
    "attention_mask": torch.ones(2, 9, dtype=torch.long),
}


def _train_a_little(model: goat.GoatModel) -> None:
    """Two SGD steps on the task + balance loss: adapters, routers and the classifier move."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    for _ in range(2):
        out = model(**INPUTS, labels=torch.tensor([0, 2]))
        (out.loss + 1e-3 * goat.balance_loss(model)).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def _snapshot(model: torch.nn.Module) -> tuple[dict, dict, dict]:
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    types = {n: type(m) for n, m in model.named_modules()}
    return params, flags, types


def _assert_same(model: torch.nn.Module, snapshot: tuple[dict, dict, dict]) -> None:
    params, flags, types = snapshot
    assert {n: type(m) for n, m in model.named_modules()} == types
    now = dict(model.named_parameters())
    assert now.keys() == params.keys()
    assert all(torch.equal(now[n], params[n]) and now[n].dtype == params[n].dtype for n in params)
    assert {n: p.requires_grad for n, p in now.items()} == flags


@pytest.mark.parametrize(
    "method, dtype",
    [(m, torch.float32) for m in [*MOE_METHODS, "lora", "pissa", "dora"]]
    + [(m, torch.bfloat16) for m in ("goat", "hydralora", "pissa")],
)
def test_disable_and_unload_give_the_base_model_bit_for_bit(method, dtype):
    base = tiny_roberta().to(dtype)
    original = _snapshot(base)
    with torch.no_grad():
        reference = copy.deepcopy(base)(**INPUTS).logits
    config = goat.GoatConfig(
        method=method, r=8, num_experts=4, top_k=2, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"]
    )
    model = goat.get_goat_model(base, config)
    _train_a_little(model)
    with torch.no_grad():
        adapted = model(**INPUTS).logits
        assert not torch.equal(adapted, reference)
        with model.disable_adapter():
            assert torch.equal(model(**INPUTS).logits, reference)
        assert torch.equal(model(**INPUTS).logits, adapted)  # the adapter (and its trained classifier) is back
    unloaded = model.unload()
    assert unloaded is base
    _assert_same(unloaded, original)  # W0, the classifier, module types and requires_grad, all as before
    with torch.no_grad():
        assert torch.equal(unloaded(**INPUTS).logits, reference)


def test_the_base_of_an_adapted_model_cannot_be_saved_or_pushed(tmp_path):
    base = tiny_roberta()
    model = goat.get_goat_model(base, goat.GoatConfig(r=8, num_experts=4, target_modules=ROBERTA_TARGETS))
    with pytest.raises(RuntimeError, match="unload"):
        model.get_base_model().save_pretrained(tmp_path / "base")
    with pytest.raises(RuntimeError, match="unload"):
        model.get_base_model().push_to_hub("someone/base")
    assert not (tmp_path / "base").exists()
    model.unload().save_pretrained(tmp_path / "base")  # the plain base saves again, with W0
    from transformers import RobertaForSequenceClassification

    again = RobertaForSequenceClassification.from_pretrained(tmp_path / "base").eval()
    torch.testing.assert_close(again(**INPUTS).logits, tiny_roberta()(**INPUTS).logits, atol=0, rtol=0)


@pytest.mark.parametrize("method", MOE_METHODS)
def test_merge_and_unload_of_a_mixture_says_why_and_what_instead(method):
    model = goat.get_goat_model(
        tiny_roberta(), goat.GoatConfig(method=method, r=8, num_experts=4, target_modules=["query"])
    )
    with pytest.raises(ValueError, match=r"cannot be folded.*unload\(\).*load_goat_model"):
        model.merge_and_unload()


def test_kasa_cannot_restore_its_truncated_base():
    model = goat.get_goat_model(tiny_roberta(), goat.GoatConfig(method="kasa", r=4, target_modules=["query"]))
    for action in (model.unload, lambda: model.disable_adapter().__enter__()):
        with pytest.raises(ValueError, match="kasa"):
            action()


def test_generate_after_load_and_disable_for_a_reference_model(tmp_path):
    """A DPO-style reference: inside disable_adapter, generate() is the base model's generate()."""
    base_dir = save_tiny_llama(tmp_path / "base")
    config = goat.GoatConfig(method="goat", r=8, num_experts=4, top_k=2, target_modules=LLAMA_TARGETS)
    model = goat.get_goat_model(load_causal_lm(base_dir), config)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path / "adapter")
    prompt = torch.randint(0, 128, (1, 5), generator=torch.Generator().manual_seed(3))
    kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    loaded = goat.load_goat_model(load_causal_lm(base_dir), tmp_path / "adapter")
    assert torch.equal(loaded.generate(prompt, **kwargs), model.generate(prompt, **kwargs))
    with loaded.disable_adapter():
        assert torch.equal(loaded.generate(prompt, **kwargs), load_causal_lm(base_dir).generate(prompt, **kwargs))


def test_push_to_hub_uploads_the_adapter_folder_with_a_model_card(tmp_path, monkeypatch):
    import huggingface_hub

    uploaded: dict[str, str] = {}

    def create_repo(self, repo_id, **kwargs):
        uploaded["repo"] = repo_id

    def upload_folder(self, *, repo_id, folder_path, commit_message, **kwargs):
        uploaded.update({p.name: p.read_bytes() for p in __import__("pathlib").Path(folder_path).iterdir()})
        return type("Commit", (), {"commit_url": f"https://hub/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    base_dir = save_tiny_llama(tmp_path / "base")
    config = goat.GoatConfig(method="goat", r=8, num_experts=4, top_k=2, target_modules=LLAMA_TARGETS)
    model = goat.get_goat_model(load_causal_lm(base_dir), config)
    url = model.push_to_hub("someone/goat-adapter")
    assert url == "https://hub/someone/goat-adapter/commit/1" and uploaded["repo"] == "someone/goat-adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(uploaded)
    assert not any(name.startswith("model") for name in uploaded)  # never the base weights
    card = uploaded["README.md"].decode()
    for fact in (
        "| method | goat |",
        "| total rank r | 8 |",
        "| experts E / top-k | 4 / 2 |",
        "q_proj",
        'goat.GoatModel.from_pretrained(base, "someone/goat-adapter")',
        "library_name: goat",
    ):
        assert fact in card, fact
    assert "base_model:" not in card and str(tmp_path) not in card  # a local base is no portable identity
