"""A tiny end-to-end GLUE-shaped run: local RTE-format files, a BERT built from a config, the real CLI."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import goat
from goat.train.__main__ import main
from goat.train.results import read_results


def _cli(tiny_model_dir, rte_dir, tmp_path, *extra: str) -> int:
    return main(
        [
            "glue",
            "--task",
            "rte",
            "--model_name_or_path",
            str(tiny_model_dir),
            "--data-dir",
            str(rte_dir),
            "--num_train_epochs",
            "2",
            "--global_batch_size",
            "16",
            "--per_device_train_batch_size",
            "8",
            "--per_device_eval_batch_size",
            "16",
            "--warmup-steps",
            "0",
            "--learning_rate",
            "1e-3",
            "--report-to",
            "none",
            "--output-dir",
            str(tmp_path / "out"),
            "--results-dir",
            str(tmp_path / "res"),
            *extra,
        ]
    )


def test_two_epochs_write_rows_summary_and_a_loadable_adapter(tiny_model_dir, rte_dir, tmp_path):
    assert _cli(tiny_model_dir, rte_dir, tmp_path, "--method", "goat", "--num_experts", "4", "--seed", "3") == 0
    rows = read_results(tmp_path / "res", "glue")
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert {r["method"] for r in rows} == {"goat"} and rows[0]["metric"] == "accuracy" and rows[0]["seed"] == 3
    assert 0.0 < rows[0]["params_pct"] < 100.0

    run = tmp_path / "out" / "glue" / rows[0]["run_name"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["accuracy"] == max(r["value"] for r in rows)
    assert sorted(p.name for p in run.glob("routing_epoch*.json")) == ["routing_epoch1.json", "routing_epoch2.json"]
    routing = json.loads((run / "routing_epoch2.json").read_text())
    assert len(routing) == 12 and all(sum(v) == pytest.approx(1.0) for v in routing.values())

    # The saved adapter (+ trained head) restores the trained model's predictions on a fresh base.
    def fresh_base():
        return AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).eval()

    ids = torch.randint(1000, 2000, (3, 9))
    logits = goat.load_goat_model(fresh_base(), run / "adapter").eval()(input_ids=ids).logits
    assert not torch.allclose(logits, fresh_base()(input_ids=ids).logits)  # training changed the model
    again = goat.load_goat_model(fresh_base(), run / "adapter")
    assert torch.allclose(again.eval()(input_ids=ids).logits, logits, atol=1e-6)


def test_same_seed_same_result_other_seed_differs(tiny_model_dir, rte_dir, tmp_path):
    for seed in ("0", "0", "1"):  # the rerun of seed 0 starts its folder over
        assert (
            _cli(
                tiny_model_dir,
                rte_dir,
                tmp_path,
                "--method",
                "lora",
                "--seed",
                seed,
                "--num_train_epochs",
                "1",
                "--overwrite-output-dir",
            )
            == 0
        )
    losses = [
        json.loads(p.read_text())["train_loss"] for p in sorted((tmp_path / "out" / "glue").glob("*/summary.json"))
    ]
    rows = read_results(tmp_path / "res", "glue")
    assert len(rows) == 3
    s0 = [r for r in rows if r["seed"] == 0]
    assert s0[0]["value"] == s0[1]["value"] and s0[0]["run_id"] != s0[1]["run_id"]
    assert len(losses) == 2  # runs of the same name share a folder; the summary is that of the last run


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task", "rtee"], "'rtee' is not in glue.yaml"),
        (["--task", "rte", "--method", "lorra"], "method"),
        (["--task", "rte", "--model_name_or_path", "/nonexistent/model"], "cannot load '/nonexistent/model'"),
        (["--task", "rte", "--data-dir", "/nonexistent/data"], "no train."),
        (["--task", "rte", "--r", "7", "--num_experts", "2"], "divisible"),
    ],
)
def test_user_errors_are_one_line(flags, message, capsys, tmp_path, tiny_model_dir, rte_dir):
    model = [] if "--model_name_or_path" in flags else ["--model_name_or_path", str(tiny_model_dir)]
    data = [] if "--data-dir" in flags else ["--data-dir", str(rte_dir)]
    code = main(
        [
            "glue",
            *model,
            *data,
            *flags,
            "--report-to",
            "none",
            "--results-dir",
            str(tmp_path),
            "--output-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()  # earlier lines: progress bars of data loading
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1]
    assert not any(line.startswith(("Traceback", "error: ")) for line in err[:-1])


def test_eval_on_start_records_the_untrained_score_as_epoch_0_and_never_as_the_result(
    tiny_model_dir, rte_dir, tmp_path
):
    assert (
        _cli(
            tiny_model_dir,
            rte_dir,
            tmp_path,
            "--method",
            "lora",
            "--seed",
            "0",
            "--eval_on_start",
            "true",
            "--learning_rate",
            "1e-9",
        )
        == 0
    )
    rows = read_results(tmp_path / "res", "glue")
    assert [r["epoch"] for r in rows] == [0.0, 1.0, 2.0]
    assert rows[0]["status"] == "incomplete" and rows[-1]["status"] == "complete"
    # epoch 0 is the untrained model: LoRA's B is zero, so it predicts what the base model with a fresh head predicts
    run = tmp_path / "out" / "glue" / rows[0]["run_name"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["history"][0]["epoch"] == 0 and summary["best_epoch"] > 0
    # at lr 1e-9 training changes nothing measurable: every epoch scores what epoch 0 scored
    assert rows[1]["value"] == rows[0]["value"] == rows[2]["value"]


def test_drug_reviews_runs_offline_through_the_cli_on_its_own_split(tiny_three_label_model_dir, tmp_path, caplog):
    """``--task drug_reviews`` reads the packaged reviews (3 labels), trains and scores the chosen test reviews."""
    from goat.tasks.drug_reviews import LABELS, read_split

    flags = ["--model_name_or_path", str(tiny_three_label_model_dir), "--max_seq_length", "64"]
    flags += ["--max_train_samples", "32", "--max_eval_samples", "20", "--method", "goat", "--num_experts", "2"]
    flags += ["--r", "4", "--num_train_epochs", "1"]
    flags += ["--output_dir", str(tmp_path / "out"), "--results_dir", str(tmp_path / "res")]
    with caplog.at_level("INFO", logger="goat.train.glue"):
        assert main(["glue", "--task", "drug_reviews", *flags]) == 0
    (row,) = read_results(tmp_path / "res", "glue")
    assert row["task"] == "drug_reviews" and row["metric"] == "accuracy"
    assert row["value"] * 20 == pytest.approx(round(row["value"] * 20))  # a count of the 20 scored reviews
    labels = read_split("validation")[1][:20]
    counts = {name: labels.count(i) for i, name in enumerate(LABELS)}
    assert "drug_reviews labels: train {" in caplog.text and f"validation {counts}" in caplog.text
