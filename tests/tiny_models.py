"""Tiny causal LMs saved as checkpoints, for tests that load through from_pretrained (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]


def tiny_llama(seed: int = 0, max_position_embeddings: int = 32):
    """A 2-layer, 32-wide LlamaForCausalLM with random weights drawn after ``torch.manual_seed(seed)``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_position_embeddings,
    )
    return LlamaForCausalLM(config)


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 64-wide LlamaForCausalLM with random weights (``seed``), saved to ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def load_causal_lm(folder: Path, **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, **kwargs).eval()
