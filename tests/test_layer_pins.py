"""Pinned outputs and gradients of a seeded tiny LLaMA under every LoRA-MoE method (issue 21, point 3).

``tests/data/layer_pins.pt`` was written by :func:`pinned_values` with ``src/goat/layers.py`` as of
commit 3fb8645, before the decode path was added. Any later change to the layers' arithmetic (fused
products, a no-grad decode path, a lazily computed balance loss) must reproduce these values to float
rounding, so no training or evaluation figure can move beyond rounding. Losses here are computed
from the logits and the routers' balance losses, not ``outputs.loss``, so they pin the layers only.

Regenerate (only for a change that is *meant* to alter the arithmetic):
``python -c "from tests.test_layer_pins import write_pins; write_pins()"``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import goat
from goat.adapters.layers import MoELinear
from tests.tiny_models import wide_tiny_llama

PINS = Path(__file__).parent / "data" / "layer_pins.pt"
METHODS = ("goat", "goat_plus", "molora", "hydralora", "adamole")
TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]


def tiny_goat_model(method: str, dropout: float) -> goat.GoatModel:
    """A 2-layer, 64-wide LLaMA (seed 0) with ``method`` adapters, r = 8, E = 4, k = 2, seed 0."""
    base = wide_tiny_llama(seed=0, eager=True)
    adapter = goat.GoatConfig(method=method, r=8, num_experts=4, top_k=2, lora_dropout=dropout, target_modules=TARGETS)
    return goat.get_goat_model(base, adapter)


def balance(model: torch.nn.Module) -> torch.Tensor:
    routers = [m.active.router for m in model.modules() if isinstance(m, MoELinear) and m.active is not None]
    return torch.stack([router.last_balance_loss for router in routers]).sum()


def load_counts(model: torch.nn.Module) -> torch.Tensor:
    return torch.stack(
        [
            m.active.router.load_counts.float()
            for m in model.modules()
            if isinstance(m, MoELinear) and m.active is not None
        ]
    )


def pinned_values(method: str) -> dict[str, torch.Tensor]:
    """Everything the layers compute for one method: training forward/backward with dropout, forwards
    without grad in train and eval mode, the balance losses, the load counts and greedy tokens."""
    ids = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(1))
    out: dict[str, torch.Tensor] = {}
    model = tiny_goat_model(method, dropout=0.1).train()
    torch.manual_seed(2)  # dropout masks
    logits = model(input_ids=ids).logits
    task = F.cross_entropy(logits[:, :-1].reshape(-1, 128), ids[:, 1:].reshape(-1))
    out["balance_train"] = balance(model).detach()
    (task + 1e-3 * balance(model)).backward()
    out["logits_train"] = logits.detach()
    for name, param in model.named_parameters():
        if param.requires_grad:  # keyed from "layers.": independent of how the wrapper names its model
            out[f"grad.{name[name.index('layers.') :]}"] = param.grad.detach().clone()
    with torch.no_grad():
        torch.manual_seed(3)
        out["logits_train_no_grad"] = model(input_ids=ids).logits  # dropout active, no autograd
        model.eval()
        out["logits_eval_no_grad"] = model(input_ids=ids).logits
        out["balance_eval_no_grad"] = balance(model)
    out["logits_eval_grad"] = model(input_ids=ids).logits.detach()  # eval mode with autograd on
    with torch.inference_mode():
        out["logits_eval_inference"] = model(input_ids=ids).logits.clone()
        config = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False, "pad_token_id": 0}
        out["generated"] = model.generate(input_ids=ids[:, :4], attention_mask=torch.ones_like(ids[:, :4]), **config)
    out["load_counts"] = load_counts(model)
    return out


def write_pins() -> None:
    PINS.parent.mkdir(exist_ok=True)
    torch.save({method: pinned_values(method) for method in METHODS}, PINS)


@pytest.fixture(scope="module")
def pins() -> dict[str, dict[str, torch.Tensor]]:
    return torch.load(PINS)


@pytest.mark.parametrize("method", METHODS)
def test_outputs_and_gradients_match_the_pins(pins, method):
    expected = pins[method]
    actual = pinned_values(method)
    assert sorted(set(actual) ^ set(expected)) == []
    for key, value in expected.items():
        if value.dtype in (torch.int64, torch.int32):
            assert torch.equal(actual[key], value), key
        else:
            torch.testing.assert_close(actual[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_the_pins_hold_gradients_of_every_trainable_tensor(pins):
    """The pin file is not vacuous: it holds non-zero gradients for routers and experts."""
    goat_pins = pins["goat"]
    grads = {k: v for k, v in goat_pins.items() if k.startswith("grad.")}
    assert any("router" in k for k in grads) and any("lora_A" in k for k in grads) and any("lora_B" in k for k in grads)
    assert all(v.abs().sum() > 0 for k, v in grads.items() if "router" in k)
    assert goat_pins["generated"].shape == (2, 9)
