"""GLUE task specs, encodings and metrics (checked against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import matthews_corrcoef as sk_mcc
from transformers import AutoTokenizer

from goat.tasks.embedded import embedded_model_path
from goat.tasks.errors import DataUnavailableError
from goat.tasks.glue import (
    GLUE_TASKS,
    encode_glue,
    get_glue_task,
    glue_metrics,
    load_glue,
    matthews_corrcoef,
    mnli_overall,
)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("classes", [2, 3])
def test_mcc_matches_sklearn(seed, classes):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, classes, 200)
    preds = np.where(rng.random(200) < 0.6, gold, rng.integers(0, classes, 200))
    assert matthews_corrcoef(preds, gold) == pytest.approx(sk_mcc(gold, preds), abs=1e-12)


def test_mcc_degenerate_predictions_is_zero_like_sklearn():
    gold = np.array([0, 1, 1, 0])
    assert matthews_corrcoef(np.ones(4, dtype=int), gold) == sk_mcc(gold, np.ones(4, dtype=int)) == 0.0


def test_task_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    gold, preds = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    cola = glue_metrics(GLUE_TASKS["cola"], preds, gold)
    assert cola == pytest.approx({"accuracy": accuracy_score(gold, preds), "mcc": sk_mcc(gold, preds)})
    mrpc = glue_metrics(GLUE_TASKS["mrpc"], preds, gold)
    assert mrpc["f1"] == pytest.approx(f1_score(gold, preds))
    assert set(glue_metrics(GLUE_TASKS["rte"], preds, gold)) == {"accuracy"}


def test_mnli_overall_is_accuracy_over_both_splits():
    rng = np.random.default_rng(1)
    m_gold, m_pred = rng.integers(0, 3, 90), rng.integers(0, 3, 90)
    x_gold, x_pred = rng.integers(0, 3, 30), rng.integers(0, 3, 30)
    expected = accuracy_score(np.r_[m_gold, x_gold], np.r_[m_pred, x_pred])
    assert mnli_overall(m_pred, m_gold, x_pred, x_gold) == pytest.approx(expected)
    assert GLUE_TASKS["mnli"].eval_splits == ("validation_matched", "validation_mismatched")


def test_seven_tasks_with_paper_metrics():
    assert set(GLUE_TASKS) == {"cola", "sst2", "mrpc", "qqp", "mnli", "qnli", "rte"}
    assert {n for n, t in GLUE_TASKS.items() if t.metric == "mcc"} == {"cola"}
    with pytest.raises(ValueError, match="unknown GLUE task 'sst'"):
        get_glue_task("sst")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(embedded_model_path()))


def test_plain_encoding_is_the_tokenizer_pair_encoding(tokenizer):
    data = Dataset.from_dict({"sentence1": ["A cat sat."], "sentence2": ["It rested."], "label": [1]})
    encoded = encode_glue(GLUE_TASKS["rte"], tokenizer, data, max_length=32)
    assert encoded.column_names == ["input_ids", "token_type_ids", "attention_mask", "labels"]
    assert encoded[0]["input_ids"] == tokenizer("A cat sat.", "It rested.")["input_ids"]
    assert encoded[0]["labels"] == 1


def test_instruction_encoding_uses_the_authors_prompt(tokenizer):
    data = Dataset.from_dict({"sentence": ["Great film."], "label": [1]})
    encoded = encode_glue(GLUE_TASKS["sst2"], tokenizer, data, prompt_style="instruction")
    expected = tokenizer("classify the sentiment of the text: Great film.\nresult: ")["input_ids"]
    assert encoded[0]["input_ids"] == expected
    with pytest.raises(ValueError, match="--prompt-style"):
        encode_glue(GLUE_TASKS["sst2"], tokenizer, data, prompt_style="t5")


def test_truncation_to_max_length(tokenizer):
    data = Dataset.from_dict({"sentence": ["word " * 300], "label": [0]})
    assert len(encode_glue(GLUE_TASKS["cola"], tokenizer, data, max_length=128)[0]["input_ids"]) == 128


def test_local_folder_loading_and_its_errors(tmp_path):
    folder = tmp_path / "rte"
    folder.mkdir()
    for split in ("train", "validation"):
        Dataset.from_dict({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [0, 1]}).to_json(
            folder / f"{split}.jsonl"
        )
    raw = load_glue(GLUE_TASKS["rte"], data_dir=str(tmp_path))
    assert raw["validation"]["label"] == [0, 1]
    with pytest.raises(DataUnavailableError, match="no validation_matched"):
        load_glue(GLUE_TASKS["mnli"], data_dir=str(folder))
    with pytest.raises(DataUnavailableError, match="missing columns \\['question'"):
        load_glue(GLUE_TASKS["qnli"], data_dir=str(folder))
