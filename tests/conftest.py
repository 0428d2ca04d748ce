"""Shared fixtures: tiny models built from configs (no downloads)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TwoLayer(nn.Module):
    """A minimal model with two differently shaped linears and a non-linear module."""

    def __init__(self, n_in: int = 40, hidden: int = 24, n_out: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(n_in, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, n_out)
        self.norm = nn.LayerNorm(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc2(self.act(self.fc1(x))))


@pytest.fixture
def two_layer() -> TwoLayer:
    return TwoLayer()


def tiny_roberta(hidden: int = 32, layers: int = 2, num_labels: int = 3, seed: int = 0):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=100,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=4 * hidden,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    return RobertaForSequenceClassification(config).eval()


ROBERTA_TARGETS = ["query", "key", "value", "output.dense", "intermediate.dense"]


@pytest.fixture(autouse=True)
def _svd_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Runs cache SVDs by default (~/.cache/goat/svd); tests keep theirs in a temporary folder."""
    from goat.adapters import svd_cache

    folder = tmp_path_factory.getbasetemp() / "svd-cache"
    monkeypatch.setattr(svd_cache, "default_cache_dir", lambda: folder)


@pytest.fixture(autouse=True)
def _own_help_cache(tmp_path_factory, monkeypatch):
    """Each test's ``--help`` builds the text live unless the test stored it itself (no user cache read or written)."""
    from goat.train import help_cache

    monkeypatch.setattr(help_cache, "CACHE_DIR", tmp_path_factory.mktemp("help-cache"))
