"""The two tiny GOAT models whose training losses the loss-accounting and pinned-trajectory tests follow."""

from __future__ import annotations

import torch

import goat
from tests.conftest import tiny_roberta
from tests.tiny_models import tiny_llama


def goat_tiny_llama() -> goat.GoatModel:
    """A 2-layer, 32-wide LLaMA (seed 0) with goat on q, v and up: r = 8, E = 4, k = 2, no dropout."""
    adapter = goat.GoatConfig(
        r=8, num_experts=4, top_k=2, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj"]
    )
    return goat.get_goat_model(tiny_llama(), adapter)


def goat_tiny_classifier() -> goat.GoatModel:
    """The tiny RoBERTa classifier without dropout, goat on query and value, its head trained in full."""
    base = tiny_roberta()
    for module in base.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    adapter = goat.GoatConfig(
        r=8, num_experts=4, top_k=2, lora_dropout=0.0, target_modules=["query", "value"], modules_to_save=["classifier"]
    )
    return goat.get_goat_model(base, adapter)
