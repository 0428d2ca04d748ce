"""PEFT's habits on GoatModel (issue 19): parameter counts as PEFT counts them (also on a 4-bit base),
peft_config, active_adapters, get_base_model, base_model as transformers/TRL read it, from_pretrained."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

import goat
from goat.adapters.quantization import quantization_config
from tests.conftest import ROBERTA_TARGETS, tiny_roberta
from tests.tiny_models import LLAMA_TARGETS, load_causal_lm, save_tiny_llama

INPUTS = {"input_ids": torch.randint(3, 100, (2, 9), generator=torch.Generator().manual_seed(0))}


def _lora(**kwargs) -> goat.GoatConfig:
    return goat.GoatConfig(method="lora", r=8, lora_alpha=16, lora_dropout=0.0, **kwargs)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "4bit"])
def test_parameter_counts_equal_peft_s_for_the_same_lora(llama_dir, quantized, capsys):
    """The same LoRA through peft and through goat: the same (trainable, total), also on a 4-bit base where
    every packed byte holds two weights (goat counted one, reporting a share about 1.6 times too large)."""
    kwargs = {"quantization_config": quantization_config("4bit", compute_dtype=torch.float32)} if quantized else {}
    ours = goat.get_goat_model(load_causal_lm(llama_dir, **kwargs), _lora(target_modules=LLAMA_TARGETS))
    peft_model = get_peft_model(
        load_causal_lm(llama_dir, **kwargs),
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LLAMA_TARGETS),
    )
    expected = peft_model.get_nb_trainable_parameters()
    assert ours.get_nb_trainable_parameters() == ours.trainable_parameter_count() == expected
    float_total = goat.get_goat_model(
        load_causal_lm(llama_dir), _lora(target_modules=LLAMA_TARGETS)
    ).trainable_parameter_count()[1]
    assert expected[1] == float_total  # a 4-bit base holds as many weights as the float one
    ours.print_trainable_parameters()
    peft_model.print_trainable_parameters()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == printed[1] and printed[0].startswith("trainable params: ")


def test_peft_config_active_adapters_and_base_models():
    model = goat.get_goat_model(tiny_roberta(), _lora(target_modules=ROBERTA_TARGETS))
    model.add_adapter("b", goat.GoatConfig(method="lora", r=4, target_modules=["query"]))
    assert model.peft_config == {"default": model.adapter_configs["default"], "b": model.adapter_configs["b"]}
    assert model.active_adapters == ["default"]
    model.set_adapter("b")
    assert model.active_adapters == ["b"] and model.peft_config["b"].r == 4
    whole = model.get_base_model()
    assert type(whole).__name__ == "RobertaForSequenceClassification"
    assert model.base_model is whole.roberta  # transformers' base_model (the backbone), which TRL calls
    assert model.base_model(**INPUTS).last_hidden_state.shape == (2, 9, 32)


def test_from_pretrained_on_the_model_and_the_config_class(tmp_path):
    saved = goat.get_goat_model(
        tiny_roberta(),
        goat.GoatConfig(
            r=8, num_experts=4, target_modules=ROBERTA_TARGETS, modules_to_save=["classifier"], aux_loss_coef=0.01
        ),
    )
    with torch.no_grad():
        for p in saved.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    saved.save_pretrained(tmp_path)
    expected = saved.eval()(**INPUTS).logits
    assert goat.GoatConfig.from_pretrained(tmp_path) == saved.goat_config
    frozen = goat.GoatModel.from_pretrained(tiny_roberta(), tmp_path)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert torch.equal(frozen(**INPUTS).logits, expected)
    trainable = goat.GoatModel.from_pretrained(tiny_roberta(), tmp_path, adapter_name="task", is_trainable=True)
    assert trainable.active_adapters == ["task"] and any(p.requires_grad for p in trainable.parameters())
