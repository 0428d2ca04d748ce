"""Tiny models saved as checkpoints, for tests that load through from_pretrained (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]


def _seeded_llama(seed: int, *, eager: bool = False, **config: object):
    """A 2-layer, 4-head LlamaForCausalLM from ``config``, weights drawn after ``torch.manual_seed(seed)``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llama_config = LlamaConfig(num_hidden_layers=2, num_attention_heads=4, **config)
    if eager:
        llama_config._attn_implementation = "eager"
    return LlamaForCausalLM(llama_config)


def tiny_llama(seed: int = 0, max_position_embeddings: int = 32):
    """A 2-layer, 32-wide LlamaForCausalLM with random weights drawn after ``torch.manual_seed(seed)``."""
    return _seeded_llama(
        seed,
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_key_value_heads=4,
        max_position_embeddings=max_position_embeddings,
    )


def wide_tiny_llama(seed: int = 0, *, eager: bool = False):
    """A 2-layer, 64-wide LlamaForCausalLM (grouped KV heads, untied head) with random weights (``seed``)."""
    return _seeded_llama(
        seed,
        eager=eager,
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """:func:`wide_tiny_llama` (``seed``) saved to ``folder``."""
    wide_tiny_llama(seed).save_pretrained(folder)
    return folder


def load_causal_lm(folder: Path, **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, **kwargs).eval()


def save_tiny_bert(folder: Path, num_labels: int = 2) -> Path:
    """A 2-layer, 32-wide BertForSequenceClassification (weights drawn after ``torch.manual_seed(0)``) with the
    packaged MiniLM tokenizer, saved to ``folder``."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from goat.tasks.embedded import embedded_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
