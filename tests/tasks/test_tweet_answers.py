"""The causal-LM embedded default: SmolLM2-135M-Instruct converted from the packaged GGUF file (checked
against the gguf package's own de-quantisation), and the tweets as an instruction -> answer task."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from safetensors import safe_open

from goat.eval.sentiment import extract_sentiment, sentiment_accuracy
from goat.tasks import embedded
from goat.tasks.causal_lm import IGNORE_INDEX, format_prompt
from goat.tasks.sentiment import LABELS, load_tweet_sentiment
from goat.tasks.tweet_answers import encode_training, tweet_eval_examples, tweet_instruction, tweet_train_records


@pytest.fixture(scope="module")
def converted():
    """The per-user converted folder (made here on first use: about 20 s on an idle 2-core machine)."""
    return embedded.embedded_causal_model_path()


@pytest.fixture(scope="module")
def tokenizer(converted):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(converted))


def test_converted_weights_equal_the_gguf_packages_dequantisation(converted):
    """Independent reference: gguf's reader and de-quantiser, not transformers' GGUF loader.
    (q and k are stored permuted for llama.cpp's rotary layout, so v, down and the embedding are compared.)"""
    reader = {t.name: t for t in gguf.GGUFReader(str(embedded.embedded_gguf_file())).tensors}
    with safe_open(str(converted / "model.safetensors"), "pt") as weights:
        for gguf_name, name in (
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"),
            ("blk.29.attn_v.weight", "model.layers.29.self_attn.v_proj.weight"),
        ):
            tensor = reader[gguf_name]
            np.testing.assert_array_equal(
                gguf.quants.dequantize(tensor.data, tensor.tensor_type), weights.get_tensor(name).numpy()
            )
    config = (converted / "config.json").read_text()
    assert '"num_hidden_layers": 30' in config and "quantization_config" not in config


def test_a_complete_cached_folder_is_used_without_converting(tmp_path, monkeypatch, converted):
    target = tmp_path / converted.name
    target.mkdir()
    for name in embedded.CONVERTED_FILES:
        (target / name).write_text("x")
    monkeypatch.setattr(embedded, "convert_gguf", lambda *a: pytest.fail("converted again"))
    assert embedded.embedded_causal_model_path(tmp_path) == target


def test_an_interrupted_conversion_leaves_no_folder_behind(tmp_path, monkeypatch):
    def half_then_fail(gguf_file, destination):
        (destination / "config.json").write_text("{}")
        raise KeyboardInterrupt  # a killed conversion

    monkeypatch.setattr(embedded, "convert_gguf", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        embedded.embedded_causal_model_path(tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the target nor the staging folder


def test_extract_sentiment_reads_the_first_label_of_the_response():
    assert extract_sentiment("the correct answer is neutral") == "neutral"
    prompt = format_prompt(tweet_instruction("so sad"))  # lists all three labels before "### Response:"
    assert extract_sentiment(prompt + "Positive, clearly") == "positive"  # prompt + answer: the prompt is skipped
    assert extract_sentiment("neutral\n\n### Response:\nnegative") == "neutral"  # an invented next example is not read
    assert extract_sentiment("negatively charged, unpositive") is None  # whole words only
    assert extract_sentiment("") is None


def test_sentiment_accuracy_counts_missing_labels_as_wrong():
    texts = ["the correct answer is negative", "the correct answer is positive", "I am not sure"]
    assert sentiment_accuracy(texts, ["negative", "neutral", "neutral"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 generations but 1"):
        sentiment_accuracy(texts[:2], ["negative"])


def test_records_are_the_classifiers_tweets_as_instructions():
    records = tweet_train_records(50, seed=3)
    classifier = load_tweet_sentiment(max_train_samples=50, max_eval_samples=1, seed=3)["train"]
    assert [r.instruction for r in records] == [tweet_instruction(t) for t in classifier["text"]]
    assert [r.response for r in records] == [f"the correct answer is {LABELS[y]}" for y in classifier["label"]]
    held_out = tweet_eval_examples(20)
    assert held_out == tweet_eval_examples(20) and [e["answer"] for e in held_out] == [
        LABELS[y] for y in load_tweet_sentiment(max_train_samples=1, max_eval_samples=20)["validation"]["label"]
    ]


def test_training_loss_is_on_the_answer_only(tokenizer):
    records = tweet_train_records(8, seed=0)
    encoded = encode_training(tokenizer, records, max_length=160)
    assert len(encoded) == 8
    for record, example in zip(records, encoded):
        answer = [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
        assert tokenizer.decode(answer) == record.response + tokenizer.eos_token
        assert example["labels"][: len(example["labels"]) - len(answer)] == [IGNORE_INDEX] * (
            len(example["labels"]) - len(answer)
        )
    assert len(encode_training(tokenizer, records, max_length=20)) == 0  # over-long examples are dropped, not cut
