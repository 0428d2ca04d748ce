"""Fixtures for the study tests: a tiny BERT (built from a config) on the real tweets, minimal sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with three labels and the packaged MiniLM tokenizer (no download)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from goat.tasks.embedded import embedded_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def flags(tiny_model, tmp_path) -> list[str]:
    """Smoke mode on the tiny model: 16 training tweets (one step), 8 held out, 16 tokens."""
    return [
        "--smoke",
        "--model_name_or_path",
        str(tiny_model),
        "--max_train_samples",
        "16",
        "--max_eval_samples",
        "8",
        "--max_seq_length",
        "16",
        "--results_dir",
        str(tmp_path / "results"),
        "--output_dir",
        str(tmp_path / "outputs"),
        "--out",
        str(tmp_path / "study"),
    ]


def result_rows(tmp_path: Path) -> list[dict]:
    """Rows the runs appended to the shared results file."""
    path = tmp_path / "results" / "glue" / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def rows_of(tmp_path):
    return lambda: result_rows(tmp_path)
