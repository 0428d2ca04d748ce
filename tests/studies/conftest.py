"""Fixtures for the study tests: a tiny BERT (built from a config) on the real tweets, minimal sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tiny_models import save_tiny_bert


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with three labels and the packaged MiniLM tokenizer (no download)."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), num_labels=3)


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
