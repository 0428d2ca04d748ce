"""Batched greedy generation with left padding on a tiny offline LLaMA."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from goat.eval.generation import generate_batched

WORDS = ["<unk>", "<s>", "</s>"] + (
    "the a cat dog sat on mat ran to home big small red blue one two three and is was "
    "what where who why how ### Instruction: Response:"
).split()


def make_tokenizer():
    vocab = {word: index for index, word in enumerate(WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def make_model(seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.3,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # EOS logit fixed at 0 (others ~N(0, 1.7)): outputs are rarely empty
        model.lm_head.weight[config.eos_token_id] = 0.0
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def model():
    return make_model()


SHORT = "the cat sat"
LONG = "where is the big red dog who ran to the small blue mat and sat on one two three"


def manual_greedy(model, tokenizer, prompt, steps):
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for _ in range(steps):
            next_id = model(input_ids=ids).logits[0, -1].argmax()
            if next_id.item() == tokenizer.eos_token_id:
                break
            ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    prompt_len = len(tokenizer(prompt)["input_ids"])
    return tokenizer.decode(ids[0, prompt_len:], skip_special_tokens=True)


def test_batched_with_longer_prompt_equals_alone(model, tokenizer):
    alone = generate_batched(model, tokenizer, [SHORT], max_new_tokens=10, progress=False)
    batched = generate_batched(model, tokenizer, [SHORT, LONG], max_new_tokens=10, batch_size=2, progress=False)
    assert alone[0].strip() != ""
    assert batched[0] == alone[0]
    long_alone = generate_batched(model, tokenizer, [LONG], max_new_tokens=10, progress=False)
    assert batched[1] == long_alone[0]


def test_greedy_matches_manual_argmax_and_returns_only_new_text(model, tokenizer):
    out = generate_batched(model, tokenizer, [SHORT, LONG], max_new_tokens=8, batch_size=2, progress=False)
    assert out[0] == manual_greedy(model, tokenizer, SHORT, 8)
    assert out[1] == manual_greedy(model, tokenizer, LONG, 8)
    assert not out[0].startswith(SHORT)


def test_order_preserved_across_batches_and_tokenizer_restored(model, tokenizer):
    prompts = [SHORT, LONG, "a dog", "what was the cat", LONG + " and", "the"]
    singles = [generate_batched(model, tokenizer, [p], max_new_tokens=5, progress=False)[0] for p in prompts]
    batched = generate_batched(model, tokenizer, prompts, max_new_tokens=5, batch_size=4, progress=False)
    assert batched == singles
    assert tokenizer.padding_side == "right"
    assert tokenizer.pad_token is None


def test_greedy_ignores_sampling_defaults_in_generation_config(tokenizer):
    model = make_model()
    expected = generate_batched(model, tokenizer, [SHORT], max_new_tokens=8, progress=False)
    model.generation_config.do_sample = True
    model.generation_config.temperature = 5.0
    model.generation_config.top_p = 0.5
    for seed in range(3):
        torch.manual_seed(seed)
        assert generate_batched(model, tokenizer, [SHORT], max_new_tokens=8, progress=False) == expected


def test_model_is_put_in_eval_mode(tokenizer):
    model = make_model()
    model.train()
    generate_batched(model, tokenizer, [SHORT], max_new_tokens=2, progress=False)
    assert not model.training


def test_empty_prompt_list(model, tokenizer):
    assert generate_batched(model, tokenizer, [], max_new_tokens=4) == []
