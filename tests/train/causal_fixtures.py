"""Offline fixtures for the causal-LM pipelines: a tiny LLaMA with a BPE tokenizer trained here, and
local files in each training and evaluation format (MetaMathQA, GSM8K, Code-Feedback, WizardLM,
MT-Bench questions, Commonsense170K and the LLM-Adapters test-set layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from goat.tasks.causal_lm import PROMPT_NO_INPUT, PROMPT_WITH_INPUT

PAIRS = [(2, 3), (4, 1), (7, 5), (6, 6), (9, 2), (3, 8), (5, 5), (1, 1), (8, 4), (2, 9)]
SETS = {"boolq": ("true", "false"), "piqa": ("solution1", "solution2")}


def _write_json(path: Path, rows: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_data(folder: Path) -> dict[str, Path]:
    """Every local file the four pipelines read, in the upstream formats."""
    metamath = [
        {
            "query": f"What is {a} plus {b}?",
            "response": f"{a} plus {b} is {a + b}.\nThe answer is: {a + b}",
            "type": "GSM_AnsAug",
        }
        for a, b in PAIRS
    ] + [{"query": "Solve x + 1 = 2.", "response": "x = 1", "type": "MATH_AnsAug"}]  # not GSM: dropped
    gsm8k = [
        {"question": f"Tom has {a} apples and gets {b} more. How many?", "answer": f"{a} + {b} = {a + b}\n#### {a + b}"}
        for a, b in PAIRS[:3]
    ]
    code = [
        {
            "query": f"Write a function that adds {a} to a number.",
            "answer": f"Sure:\n```python\ndef add(x):\n    return x + {a}\n```\nThis adds {a}.",
        }
        for a, _ in PAIRS
    ]
    wizard = [{"instruction": f"Say hello {a} times.", "output": " ".join(["hello"] * a)} for a, _ in PAIRS]
    wizard.append({"instruction": "Do something bad.", "output": "Sorry, as an AI I cannot."})  # refusal: dropped
    questions = [
        {"question_id": 81 + i, "category": "writing", "turns": [f"Write a poem about {a}.", "Now shorten it."]}
        for i, (a, _) in enumerate(PAIRS[:3])
    ]
    commonsense = [
        {
            "instruction": f"Is {a} larger than {b}? Answer format: true/false",
            "input": "",
            "output": f"the correct answer is {str(a > b).lower()}",
            "answer": str(a > b).lower(),
        }
        for a, b in PAIRS
    ]
    files = {
        "metamath": _write_json(folder / "MetaMathQA-395K.json", metamath),
        "gsm8k": _write_jsonl(folder / "gsm8k_test.jsonl", gsm8k),
        "code": _write_jsonl(folder / "code_feedback.jsonl", code),
        "wizard": _write_json(folder / "wizardlm.json", wizard),
        "mtbench": _write_jsonl(folder / "question.jsonl", questions),
        "commonsense": _write_json(folder / "commonsense_170k.json", commonsense),
        "commonsense_eval": folder / "dataset",
    }
    for name, labels in SETS.items():
        rows = [
            {"instruction": f"Question {i}? Answer format: {'/'.join(labels)}", "input": "", "answer": labels[i % 2]}
            for i in range(3)
        ]
        _write_json(folder / "dataset" / name / "test.json", rows)
    return files


def _corpus(files: dict[str, Path]) -> list[str]:
    texts = [PROMPT_NO_INPUT, PROMPT_WITH_INPUT, "def check(candidate):\n    assert candidate(1) == 2\n```python"]
    for path in files.values():
        for found in [path] if path.is_file() else sorted(path.rglob("*.json")):
            texts.append(found.read_text())
    return texts


def write_tiny_llama(folder: Path, files: dict[str, Path]) -> Path:
    """A 2-layer, 64-wide LLaMA built from a config and a byte-level BPE tokenizer trained on the fixtures."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(_corpus(files), trainer)
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
