"""A quantized base (QLoRA): adapters on a bitsandbytes 4-bit/8-bit model, Theorem 3.4 relative to the
quantized base, training, save/load (issue 13, point 3). bitsandbytes 0.50 runs NF4 and int8 on CPU."""

from __future__ import annotations

import pytest
import torch

import goat
from goat.adapters.quantization import dense_weight, quantization_config, stored_weight
from tests.tiny_models import LLAMA_TARGETS, load_causal_lm, save_tiny_llama

pytest.importorskip("bitsandbytes")  # pinned in requirements.txt; a missing install must not hide the rest
# Models are compared in train mode (no dropout anywhere here): in eval mode without grad, bitsandbytes
# repacks 4-bit weights for its AVX512-BF16 CPU kernel, which rounds activations to bfloat16 and would
# blur a 1e-5 comparison of two computations that differ by float32 rounding.
IDS = torch.randint(0, 128, (2, 7), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama"))


def _quantized(base_dir, kind: str = "4bit"):
    return load_causal_lm(base_dir, quantization_config=quantization_config(kind, compute_dtype=torch.float32)).train()


def _zero_routers(model: goat.GoatModel) -> None:
    for layer in model.adapted_layers().values():
        layer.router.weight.data.zero_()


def test_quantization_config_is_qlora_nf4_with_double_quantization():
    config = quantization_config("4bit")
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config("8bit").load_in_8bit and quantization_config(None) is None
    with pytest.raises(ValueError, match="choose one of 4bit, 8bit"):
        quantization_config("3bit")


@pytest.mark.parametrize("kind", ["4bit", "8bit"])
@pytest.mark.parametrize("method", ["goat", "goat_plus", "pissa", "milora"])
def test_theorem_3_4_holds_relative_to_the_quantized_base(base_dir, kind, method):
    """y = Q(W0) x - B_res A_res x + sum_j w_j s B_j A_j x: a zeroed router with top_k = E (or a single
    adapter at init) gives the quantized base's output; the 4-bit/8-bit weights are untouched."""
    base = _quantized(base_dir, kind)
    q_proj = base.model.layers[0].self_attn.q_proj
    stored = stored_weight(q_proj).clone()
    with torch.no_grad():
        reference = base(input_ids=IDS).logits
    config = goat.GoatConfig(method=method, r=8, num_experts=4, top_k=4, lora_dropout=0.0, target_modules=LLAMA_TARGETS)
    model = goat.get_goat_model(base, config)
    if config.is_moe:
        _zero_routers(model)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=IDS).logits, reference, atol=1e-5, rtol=1e-5)
    layer = model.adapted_layers()["model.layers.0.self_attn.q_proj"]
    base_layer = layer.base_layer
    assert type(base_layer.weight).__name__ in ("Params4bit", "Int8Params") and torch.equal(
        stored_weight(base_layer), stored
    )
    assert layer.residual_A is not None  # W_res is a frozen path, not subtracted from Q(W0)


def test_svd_prior_comes_from_the_dequantized_weight(base_dir):
    """goat's experts are SVD segments of Q(W0), the weight the quantized forward multiplies by: the
    same as on a full-precision linear layer holding the dequantized weight."""
    base = _quantized(base_dir)
    up_proj = base.model.layers[0].mlp.up_proj
    W = dense_weight(up_proj).float()
    x = torch.randn(5, 64)
    torch.testing.assert_close(up_proj(x), x @ W.T, atol=1e-5, rtol=1e-5)
    plain = torch.nn.Sequential()
    plain.up_proj = torch.nn.Linear(64, 128, bias=False)
    plain.up_proj.weight.data = W.clone()
    config = goat.GoatConfig(method="goat", r=8, num_experts=4, target_modules=["up_proj"])
    ours = goat.get_goat_model(base, config).adapted_layers()["model.layers.0.mlp.up_proj"]
    reference = goat.get_goat_model(plain, config).adapted_layers()["up_proj"]
    assert all(torch.equal(a, b) for a, b in zip(ours.lora_A, reference.lora_A))
    assert torch.equal(ours.residual_B, reference.residual_B) and torch.equal(ours.residual_A, reference.residual_A)


@pytest.mark.parametrize("method", ["goat", "lora"])
def test_training_on_a_4bit_base_moves_only_the_adapter_and_saves_and_loads(base_dir, method, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = goat.get_goat_model(
        _quantized(base_dir),
        goat.GoatConfig(method=method, r=8, num_experts=4, top_k=2, lora_dropout=0.0, target_modules=LLAMA_TARGETS),
    )
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    # transformers' Trainer accepts it: trainable adapters sit on the quantized model
    Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path / "t"), report_to=[], use_cpu=True))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(3):
        loss = model(input_ids=IDS, labels=IDS).loss + 1e-3 * goat.balance_loss(model)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    with torch.no_grad():
        expected = model(input_ids=IDS).logits
    model.save_pretrained(tmp_path / "adapter")
    restored = goat.load_goat_model(_quantized(base_dir), tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(restored(input_ids=IDS).logits, expected, atol=1e-5, rtol=1e-5)


def test_a_4bit_lora_adapter_loads_in_stock_peft(base_dir, tmp_path):
    from peft import PeftModel

    config = goat.GoatConfig(method="pissa", r=8, lora_dropout=0.0, target_modules=LLAMA_TARGETS)
    model = goat.get_goat_model(_quantized(base_dir), config)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
        expected = model(input_ids=IDS).logits
    model.save_pretrained(tmp_path)
    stock = PeftModel.from_pretrained(_quantized(base_dir), tmp_path, is_trainable=True)
    with torch.no_grad():
        torch.testing.assert_close(stock(input_ids=IDS).logits, expected, atol=1e-5, rtol=1e-5)


def test_an_adapter_trained_on_4bit_names_the_dtype_when_loaded_on_full_precision(base_dir, tmp_path):
    goat.get_goat_model(
        _quantized(base_dir), goat.GoatConfig(r=8, num_experts=4, target_modules=LLAMA_TARGETS)
    ).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="another base model: .*uint8"):
        goat.load_goat_model(load_causal_lm(base_dir), tmp_path)


def test_full_moe_and_kasa_refuse_a_quantized_base(base_dir):
    for method, message in (("full_moe", "full-precision copies"), ("kasa", "truncates the base weights")):
        with pytest.raises(ValueError, match=message):
            goat.get_goat_model(_quantized(base_dir), goat.GoatConfig(method=method, r=4, target_modules=["q_proj"]))


def _step_gradients(model: goat.GoatModel) -> dict[str, torch.Tensor | None]:
    model.train()
    model.zero_grad()
    model(input_ids=IDS, labels=IDS).loss.backward()
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_training_after_an_evaluation_keeps_every_gradient_on_a_4bit_cpu_base(base_dir):
    """Issue 19: bitsandbytes repacks 4-bit weights for CPU inference on an eval forward without grad (on
    AVX512-BF16 CPUs, such as this project's); backward through them gave later steps no gradient in every
    layer below the last. After train -> eval -> train every adapter tensor gets the gradient it gets
    without the evaluation (adapters on q_proj/v_proj only: frozen 4-bit layers sit between them)."""
    config = goat.GoatConfig(r=8, num_experts=4, top_k=2, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    evaluated = goat.get_goat_model(_quantized(base_dir), config)
    never = goat.get_goat_model(_quantized(base_dir), config)
    _step_gradients(evaluated)
    evaluated.eval()
    with torch.no_grad():
        evaluated(input_ids=IDS)
    layer = evaluated.get_base_model().model.layers[0].mlp.up_proj  # frozen 4-bit, not adapted
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    after, reference = _step_gradients(evaluated), _step_gradients(never)
    assert len(after) == 12 and all(g is not None for g in after.values()), [n for n, g in after.items() if g is None]
    for name, grad in after.items():
        torch.testing.assert_close(grad, reference[name], atol=1e-6, rtol=1e-5)
