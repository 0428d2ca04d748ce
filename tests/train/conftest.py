"""Fixtures of the training tests: a tiny BERT classifier folder and RTE-format data files (no downloads)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from tests.tiny_models import save_tiny_bert

WORDS = "the a cat dog sat ran on under mat tree is was big small".split()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_three_label_model_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-3"), num_labels=3)


@pytest.fixture(scope="session")
def rte_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("glue") / "rte"
    folder.mkdir()
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 48), ("validation", 24)):
        picks = torch.randint(0, len(WORDS), (n, 2, 6), generator=gen).tolist()
        Dataset.from_dict(
            {
                "sentence1": [" ".join(WORDS[i] for i in p[0]) for p in picks],
                "sentence2": [" ".join(WORDS[i] for i in p[1]) for p in picks],
                "label": [int(p[0][0] % 2) for p in picks],
            }
        ).to_json(folder / f"{split}.jsonl")
    return folder.parent
