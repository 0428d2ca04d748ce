"""``python -m goat.train commonsense --task tweet_sentiment --model_name_or_path embedded`` end to end, in miniature:
GOAT on the packaged SmolLM2 (adapters on q and v only, to keep the SVD initialisation short), two
optimiser steps, eight held-out tweets answered greedily and scored by answer extraction."""

from __future__ import annotations

import json

from goat.tasks.sentiment import LABELS
from goat.train.__main__ import main
from goat.train.results import read_results


def test_goat_trains_on_tweet_answers_and_scores_them(tmp_path):
    argv = [
        "commonsense",
        "--task",
        "tweet_sentiment",
        "--model_name_or_path",
        "embedded",
        "--method",
        "goat",
        "--target_modules",
        "q_proj",
        "v_proj",
        "--max_train_samples",
        "8",
        "--global_batch_size",
        "4",
        "--per_device_train_batch_size",
        "4",
        "--max_eval_samples",
        "8",
        "--per_device_eval_batch_size",
        "8",
        "--output_dir",
        str(tmp_path / "out"),
        "--results_dir",
        str(tmp_path / "res"),
        "--run_name",
        "tiny",
        "--save_adapter",
        "false",
    ]
    assert main(argv) == 0
    zero_shot, row = read_results(
        tmp_path / "res", "commonsense"
    )  # the YAML's eval_on_start: epoch 0, then the trained epoch
    assert (
        (zero_shot["epoch"], row["epoch"]) == (0.0, 1.0)
        and zero_shot["status"] == "incomplete"
        and row["status"] == "complete"
    )
    assert row["task"] == "tweet_sentiment" and row["metric"] == "accuracy" and 0.0 <= row["value"] <= 1.0
    for epoch, result in ((0, zero_shot), (1, row)):
        generations = (
            tmp_path / "out" / "commonsense" / "tiny" / "generations" / f"epoch{epoch}" / "tweet_sentiment.jsonl"
        )
        lines = [json.loads(line) for line in generations.read_text().splitlines()]
        assert len(lines) == 8 and {line["answer"] for line in lines} <= set(LABELS)
        correct = sum(line["prediction"] == line["answer"] for line in lines)
        assert result["value"] == correct / 8  # the score is the extracted answers', nothing else
