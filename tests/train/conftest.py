"""Fixtures of the training tests: a tiny BERT classifier folder and RTE-format data files (no downloads)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from goat.tasks.embedded import embedded_model_path

WORDS = "the a cat dog sat ran on under mat tree is was big small".split()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
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
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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
