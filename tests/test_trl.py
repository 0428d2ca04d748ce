"""TRL trains GOAT with the balance loss (issue 19): SFTTrainer given the adapted model or the GoatModel, and
DPOTrainer with the disabled adapter as its reference model. Tiny config-built LLaMA, CPU."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

import goat
from tests.tiny_models import tiny_llama

COPIES = 8


def _tokenizer() -> PreTrainedTokenizerFast:
    words = Tokenizer(models.WordLevel({f"t{i}": i for i in range(64)}, unk_token="t0"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=words, pad_token="t1", eos_token="t2", unk_token="t0")


def _base() -> LlamaForCausalLM:
    return tiny_llama(max_position_embeddings=64)


def _adapted(coef: float) -> goat.GoatModel:
    return goat.get_goat_model(
        _base(),
        goat.GoatConfig(
            r=8, num_experts=4, top_k=2, lora_dropout=0.0, aux_loss_coef=coef, target_modules=["q_proj", "v_proj"]
        ),
    )


class RouterGradients(TrainerCallback):
    def __init__(self) -> None:
        self.grads: torch.Tensor | None = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        self.grads = torch.cat([p.grad.flatten() for n, p in model.named_parameters() if n.endswith("router.weight")])


IDS = torch.randint(3, 64, (12,), generator=torch.Generator().manual_seed(1)).tolist()


def _sft_step(tmp_path, coef: float, per_device: int, given: str, seen: list | None = None) -> torch.Tensor:
    """Router gradients of one SFT optimiser step over 8 copies of one sequence, GA = 8 / per_device;
    ``seen`` collects the input_ids the backbone got."""
    model = _adapted(coef)
    if seen is not None:
        model.base_model.register_forward_pre_hook(lambda m, a, k: seen.append(k["input_ids"]), with_kwargs=True)
    args = SFTConfig(
        output_dir=str(tmp_path / f"{given}-{coef}-{per_device}"),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=COPIES // per_device,
        max_steps=1,
        learning_rate=1e-6,
        report_to=[],
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        save_strategy="no",
        seed=0,
    )
    recorder = RouterGradients()
    SFTTrainer(
        model=model if given == "goat_model" else model.get_base_model(),
        args=args,
        processing_class=_tokenizer(),
        train_dataset=Dataset.from_dict({"input_ids": [IDS] * COPIES}),
        callbacks=[recorder],
    ).train()
    return recorder.grads


@pytest.mark.parametrize("given", ["adapted_model", "goat_model"])
def test_sft_trainer_applies_the_balance_loss(tmp_path, given):
    """The router gradient SFTTrainer's aux term adds (coef 0.5 minus coef 0) is 0.5 x the gradient of L_b
    on that batch, computed directly; before, both runs gave the same gradient to 1e-9."""
    seen: list[torch.Tensor] = []
    aux = _sft_step(tmp_path, 0.5, COPIES, given, seen) - _sft_step(tmp_path, 0.0, COPIES, given)
    (batch,) = seen  # what SFTTrainer fed (the sequence plus its EOS token)
    model = _adapted(0.0).train()
    model(input_ids=batch)
    goat.balance_loss(model).backward()
    expected = 0.5 * torch.cat([p.grad.flatten() for n, p in model.named_parameters() if n.endswith("router.weight")])
    assert expected.norm() > 1e-3
    torch.testing.assert_close(aux, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


@pytest.mark.parametrize("given", ["adapted_model", "goat_model"])
def test_sft_trainer_gradient_accumulation_1x8_equals_4x2(tmp_path, given):
    aux = {n: _sft_step(tmp_path, 1.0, n, given) - _sft_step(tmp_path, 0.0, n, given) for n in (COPIES, 2)}
    assert aux[COPIES].norm() > 1e-4
    torch.testing.assert_close(aux[2], aux[COPIES], rtol=1e-4, atol=1e-5 * aux[COPIES].abs().max().item())


def test_dpo_trainer_runs_with_the_disabled_adapter_as_reference(tmp_path):
    model = _adapted(1e-3)
    reference = goat.disabled_adapter_reference(model)
    generator = torch.Generator().manual_seed(2)
    words = lambda n: " ".join(f"t{i}" for i in torch.randint(3, 64, (n,), generator=generator).tolist())  # noqa: E731
    data = Dataset.from_dict(
        {
            "prompt": [words(5) for _ in range(8)],
            "chosen": [words(4) for _ in range(8)],
            "rejected": [words(4) for _ in range(8)],
        }
    )
    args = DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=2,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        logging_steps=1,
        save_strategy="no",
    )
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=data, processing_class=_tokenizer())
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 2 and all(h["aux_loss"] >= 4 for h in logged)  # L_b >= 1 in each of 4 layers
    assert any(not torch.equal(p, trainable[n]) for n, p in model.named_parameters() if n in trainable)
    ids = torch.tensor([IDS])
    with torch.no_grad():
        base_logits = _base()(input_ids=ids).logits
        assert torch.equal(reference(input_ids=ids).logits, base_logits)  # the reference is the base model
        assert not torch.allclose(model(input_ids=ids).logits, base_logits)  # the policy is not


def test_goat_trainer_mixed_into_sft_trainer_adds_the_term_once(tmp_path):
    """Before, the mixed trainer logged an aux_loss that carried no gradient; now its router gradient and its
    loss are SFTTrainer's own, the term counted once."""
    from goat.train.trainer import GoatTrainer

    class GoatSFTTrainer(GoatTrainer, SFTTrainer):
        pass

    grads, losses = {}, {}
    for name, trainer_class in (("sft", SFTTrainer), ("mixed", GoatSFTTrainer)):
        for coef in (0.0, 0.5):
            model = _adapted(coef)
            args = SFTConfig(
                output_dir=str(tmp_path / f"{name}{coef}"),
                per_device_train_batch_size=2,
                gradient_accumulation_steps=4,
                max_steps=1,
                learning_rate=1e-6,
                report_to=[],
                use_cpu=True,
                bf16=False,
                disable_tqdm=True,
                save_strategy="no",
                seed=0,
            )
            recorder = RouterGradients()
            trainer = trainer_class(
                model=model,
                args=args,
                processing_class=_tokenizer(),
                callbacks=[recorder],
                train_dataset=Dataset.from_dict({"input_ids": [IDS] * COPIES}),
            )
            trainer.train()
            grads[name, coef] = recorder.grads
            losses[name, coef] = trainer.state.log_history[-1]["train_loss"]
    aux_sft, aux_mixed = (grads[n, 0.5] - grads[n, 0.0] for n in ("sft", "mixed"))
    assert aux_sft.norm() > 1e-4
    torch.testing.assert_close(aux_mixed, aux_sft, rtol=1e-4, atol=1e-5 * aux_sft.abs().max().item())
    assert losses["mixed", 0.5] == pytest.approx(losses["sft", 0.5], rel=1e-5)
    assert losses["sft", 0.5] - losses["sft", 0.0] > 0.5  # 0.5 x L_b, L_b >= 1 in each of 4 layers
