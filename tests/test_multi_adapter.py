"""Several adapters on one base model, in PEFT's sense (issue 13, point 4): each adapter's outputs are
exactly its own, whichever others share the base, and each W_res applies only while its adapter is active."""

from __future__ import annotations

import pytest
import torch

import goat
from tests.conftest import ROBERTA_TARGETS, tiny_roberta

INPUTS = {
    "input_ids": torch.randint(3, 100, (2, 9), generator=torch.Generator().manual_seed(0)),
    "attention_mask": torch.ones(2, 9, dtype=torch.long),
}


def _config(method: str, seed: int, **kwargs) -> goat.GoatConfig:
    settings = dict(
        r=8,
        num_experts=4,
        top_k=2,
        lora_dropout=0.0,
        target_modules=ROBERTA_TARGETS,
        modules_to_save=["classifier"],
        seed=seed,
    )
    return goat.GoatConfig(method=method, **{**settings, **kwargs})


def _perturb(model: goat.GoatModel, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(**INPUTS).logits


PAIRS = [
    ("goat", "goat"),
    ("goat", "molora"),
    ("goat_plus", "hydralora"),
    ("lora", "pissa"),
    ("pissa", "milora"),
    ("dora", "lora"),
]


@pytest.mark.parametrize("first, second", PAIRS)
def test_each_adapter_gives_exactly_its_own_outputs(first, second):
    """Adapter b added to a model holding a, both trained (and their classifiers): switching gives each one's
    outputs bit for bit as a model holding only that adapter; disabling gives the base."""
    alone_a, alone_b = (
        goat.get_goat_model(tiny_roberta(), _config(first, 1)),
        goat.get_goat_model(tiny_roberta(), _config(second, 2)),
    )
    shared = goat.get_goat_model(tiny_roberta(), _config(first, 1))
    shared.add_adapter("b", _config(second, 2))
    assert shared.active_adapter == "default" and set(shared.adapter_configs) == {"default", "b"}
    _perturb(alone_a, 3)
    _perturb(shared, 3)  # trains only the active adapter "default" (and its classifier)
    shared.set_adapter("b")
    _perturb(alone_b, 4)
    _perturb(shared, 4)
    expected_a, expected_b, base = _logits(alone_a.eval()), _logits(alone_b.eval()), _logits(tiny_roberta())
    shared.eval()
    assert torch.equal(_logits(shared), expected_b)
    shared.set_adapter("default")
    assert torch.equal(_logits(shared), expected_a)
    with shared.disable_adapter():
        assert torch.equal(_logits(shared), base)
    shared.set_adapter("b")
    assert torch.equal(_logits(shared), expected_b)


def test_only_the_active_adapter_trains_and_reports_routing():
    model = goat.get_goat_model(tiny_roberta(), _config("goat", 1, target_modules=["query"]))
    model.add_adapter("b", _config("goat", 2, target_modules=["query", "value"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapters.default." in n or "classifier" in n for n in trainable)
    model(**INPUTS)
    assert set(goat.routing_stats(model)) == {f"roberta.encoder.layer.{i}.attention.self.query" for i in (0, 1)}
    model.set_adapter("b")
    assert all(".adapters.b." in n or "classifier" in n for n, p in model.named_parameters() if p.requires_grad)
    model(**INPUTS)
    assert len(goat.routing_stats(model, reset=True)) == 4 and goat.balance_loss(model) > 0
    assert model.adapted_names == [n for n in model.adapter_targets["b"]] and len(model.adapted_names) == 4


def test_each_w_res_applies_only_while_its_adapter_is_active():
    """Two goat adapters with different SVD segments on one base: at init, with zeroed routers and top_k = E,
    each one alone reproduces the base exactly (Thm 3.4), so neither carries the other's W_res."""
    model = goat.get_goat_model(tiny_roberta(), _config("goat", 1, top_k=4, modules_to_save=[]))
    model.add_adapter("minor", _config("goat", 2, top_k=4, init="minor", modules_to_save=[]))
    base = _logits(tiny_roberta())
    for name in ("default", "minor"):
        model.set_adapter(name)
        for layer in model.adapted_layers().values():
            layer.router.weight.data.zero_()
        torch.testing.assert_close(_logits(model), base, atol=1e-5, rtol=1e-5)
    first, second = (
        model.adapted_layers()["roberta.encoder.layer.0.attention.self.query"].adapters[n].residual_B
        for n in ("default", "minor")
    )
    assert not torch.allclose(first, second)


def test_load_goat_model_adds_a_saved_adapter_under_a_name(tmp_path):
    saved = goat.get_goat_model(tiny_roberta(), _config("goat", 5))
    _perturb(saved, 6)
    saved.save_pretrained(tmp_path)
    expected = _logits(saved.eval())
    model = goat.load_goat_model(tiny_roberta(), tmp_path, adapter_name="math")
    assert model.active_adapter == "math"
    model.add_adapter("fresh", _config("goat", 7))
    same = goat.load_goat_model(model, tmp_path, adapter_name="again")
    assert same is model and set(model.adapter_configs) == {"math", "fresh", "again"}
    model.eval()
    for name in ("math", "again"):
        model.set_adapter(name)
        assert torch.equal(_logits(model), expected)


def test_saving_acts_on_the_active_adapter(tmp_path):
    model = goat.get_goat_model(tiny_roberta(), _config("lora", 1))
    model.add_adapter("b", _config("pissa", 2))
    model.set_adapter("b")
    _perturb(model, 8)
    expected = _logits(model.eval())
    model.save_pretrained(tmp_path)
    assert goat.load_goat_model(tiny_roberta(), tmp_path).goat_config.method == "pissa"
    assert torch.equal(_logits(goat.load_goat_model(tiny_roberta(), tmp_path).eval()), expected)


def test_delete_adapter_switches_away_and_keeps_the_others_exact():
    model = goat.get_goat_model(tiny_roberta(), _config("goat", 1))
    model.add_adapter("b", _config("goat", 2))
    _perturb(model, 3)
    expected = _logits(model.eval())
    model.set_adapter("b")
    model.delete_adapter("b")
    assert model.active_adapter == "default" and list(model.adapter_configs) == ["default"]
    assert torch.equal(_logits(model), expected)
    assert not any(".adapters.b." in n for n, _ in model.named_parameters())
    with pytest.raises(ValueError, match="only adapter; unload"):
        model.delete_adapter("default")


@pytest.mark.parametrize(
    "first, second, message",
    [
        ("goat", "lora", "one kind"),
        ("lora", "goat", "one kind"),
        ("goat", "full_moe", "one kind"),
        ("lora", "kasa", "kasa"),
        ("full", "lora", "one kind"),
    ],
)
def test_adapters_of_different_kinds_cannot_share_a_model(first, second, message):
    model = goat.get_goat_model(tiny_roberta(), _config(first, 1))
    before = _logits(model.eval())
    with pytest.raises(ValueError, match=message):
        model.add_adapter("b", _config(second, 2))
    assert list(model.adapter_configs) == ["default"] and torch.equal(_logits(model), before)


def test_adapter_names_are_checked():
    model = goat.get_goat_model(tiny_roberta(), _config("goat", 1))
    for name, message in (("default", "exists already"), ("a.b", "letters, digits"), ("", "letters, digits")):
        with pytest.raises(ValueError, match=message):
            model.add_adapter(name, _config("goat", 2))
    with pytest.raises(ValueError, match="no adapter named 'nope'"):
        model.set_adapter("nope")


def test_two_different_saved_adapters_keep_their_own_heads(tmp_path):
    """Issue 19: loading a second adapter folder must not copy its trained classifier over the active
    adapter's. Two folders trained differently; each, once active, gives exactly the outputs it gives alone."""
    folders, expected = [], []
    for seed in (11, 12):
        trained = goat.get_goat_model(tiny_roberta(), _config("goat", seed))
        _perturb(trained, seed)
        trained.save_pretrained(tmp_path / str(seed))
        folders.append(tmp_path / str(seed))
        expected.append(_logits(goat.load_goat_model(tiny_roberta(), tmp_path / str(seed)).eval()))
    assert not torch.allclose(expected[0], expected[1])
    model = goat.load_goat_model(tiny_roberta(), folders[0], adapter_name="first").eval()
    goat.load_goat_model(model, folders[1], adapter_name="second")
    assert model.active_adapter == "first" and torch.equal(_logits(model), expected[0])
    model.set_adapter("second")
    assert torch.equal(_logits(model), expected[1])
    model.set_adapter("first")
    assert torch.equal(_logits(model), expected[0])
    with model.disable_adapter():
        assert torch.equal(_logits(model), _logits(tiny_roberta()))
