"""Causal-LM pipelines (paper Tables 2, 3) end to end on a tiny LLaMA: real CLI, local data files, CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from transformers.integrations import HfDeepSpeedConfig
from transformers.integrations.deepspeed import unset_hf_deepspeed_config

import goat
from goat.tasks.causal_lm import DATASETS, IGNORE_INDEX
from goat.train.__main__ import main
from goat.train.causal import TASKS, attention_implementation, build_causal_lm, load_causal_lm, shard
from goat.train.results import read_results
from goat.train.runner import prepare, train
from goat.train.settings import resolve
from tests.train.causal_fixtures import write_data, write_tiny_llama

ZERO3 = Path(goat.__file__).parent / "configs" / "deepspeed" / "zero3.json"
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]  # the causal families' target_modules (App. F.1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: thread start-up costs more than it saves (a lot on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("causal-data"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, files):
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), files)


def _argv(family, model_dir, tmp_path, *extra):
    """Two optimiser steps (8 examples, batch 4, one epoch), 3 evaluation examples, 8 new tokens."""
    return [
        family,
        "--model_name_or_path",
        str(model_dir),
        "--num_train_epochs",
        "1",
        "--max_train_samples",
        "8",
        "--global_batch_size",
        "4",
        "--per_device_train_batch_size",
        "4",
        "--warmup_steps",
        "0",
        "--learning_rate",
        "1e-2",
        "--max_new_tokens",
        "8",
        "--per_device_eval_batch_size",
        "2",
        "--max_eval_samples",
        "3",
        "--bf16",
        "false",
        "--report_to",
        "none",
        "--output_dir",
        str(tmp_path / "out"),
        "--results_dir",
        str(tmp_path / "res"),
        *extra,
    ]


def _config(argv):
    """``python -m goat.train`` argv -> the resolved RunConfig."""
    return resolve(argv[0], argv[1:])


def _run_folder(tmp_path, family, row):
    return tmp_path / "out" / family / row["run_name"]


def test_math_trains_two_steps_with_goat_and_scores_gsm8k(model_dir, files, tmp_path):
    argv = _argv(
        "math",
        model_dir,
        tmp_path,
        "--train_file",
        str(files["metamath"]),
        "--eval_data",
        str(files["gsm8k"]),
        "--gradient_checkpointing",
        "--num_experts",
        "4",
    )
    prepared = prepare(_config(argv))
    model = prepared.trainer.model
    assert len(model.adapted_names) == 2 * len(LLAMA_TARGETS)  # q, k, v, up, down of both blocks (App. F.1)
    assert {name.rsplit(".", 1)[-1] for name in model.adapted_names} == set(LLAMA_TARGETS)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    summary = train(prepared)

    assert prepared.trainer.state.global_step == 2
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any("lora_B" in n for n in changed)  # gradients reach the adapters through checkpointed blocks
    (row,) = read_results(tmp_path / "res", "math")
    assert row["task"] == "gsm8k" and row["metric"] == "exact_match" and 0.0 <= row["value"] <= 1.0
    assert summary["best"]["exact_match"] == row["value"]
    run = _run_folder(tmp_path, "math", row)
    generations = [
        json.loads(line) for line in (run / "generations" / "epoch1" / "gsm8k.jsonl").read_text().splitlines()
    ]
    assert [g["reference"] for g in generations] == ["5", "5", "12"]
    assert all(isinstance(g["generation"], str) for g in generations)

    # The saved adapter restores the trained model on a fresh base.
    ids = torch.tensor([[1, 40, 41, 42, 43]])
    restored = goat.load_goat_model(AutoModelForCausalLM.from_pretrained(model_dir), run / "adapter").eval()
    assert torch.allclose(restored(input_ids=ids).logits, model.eval()(input_ids=ids).logits, atol=1e-5)


def test_prompt_tokens_carry_no_loss(model_dir, files):
    config = _config(
        _argv("math", model_dir, model_dir, "--train_file", str(files["metamath"]), "--eval_data", str(files["gsm8k"]))
    )
    bundle = build_causal_lm(config)
    batch = bundle.data_collator([bundle.train_dataset[i] for i in range(4)])
    assert (batch["labels"] == IGNORE_INDEX).any(dim=1).all() and (batch["labels"] != IGNORE_INDEX).any(dim=1).all()
    out = bundle.model(**batch)
    out.logits.retain_grad()
    out.loss.backward()
    # logits at t predict token t + 1: no gradient where that token is prompt or padding, some elsewhere
    targets = torch.cat([batch["labels"][:, 1:], torch.full_like(batch["labels"][:, :1], IGNORE_INDEX)], dim=1)
    grad = out.logits.grad.abs().sum(-1)
    assert torch.all(grad[targets == IGNORE_INDEX] == 0)
    assert torch.all(grad[targets != IGNORE_INDEX] > 0)


def test_code_scores_humaneval_in_the_sandbox(model_dir, files, tmp_path):
    assert (
        main(
            _argv(
                "code",
                model_dir,
                tmp_path,
                "--train_file",
                str(files["code"]),
                "--method",
                "lora",
                "--max_eval_samples",
                "2",
            )
        )
        == 0
    )
    (row,) = read_results(tmp_path / "res", "code")
    assert row["task"] == "humaneval" and row["metric"] == "pass@1" and 0.0 <= row["value"] <= 1.0
    samples = (
        (_run_folder(tmp_path, "code", row) / "generations" / "epoch1" / "humaneval_samples.jsonl")
        .read_text()
        .splitlines()
    )
    records = [json.loads(line) for line in samples]
    assert [r["task_id"] for r in records] == ["HumanEval/0", "HumanEval/1"]
    assert all(r["status"] in ("passed", "failed", "timeout") and "completion" in r for r in records)
    assert row["value"] == sum(r["passed"] for r in records) / 2


def test_chat_writes_fastchat_answers_and_leaves_the_score_to_the_judge(model_dir, files, tmp_path):
    argv = _argv(
        "chat",
        model_dir,
        tmp_path,
        "--train_file",
        str(files["wizard"]),
        "--eval_data",
        str(files["mtbench"]),
        "--num_train_epochs",
        "2",
    )
    assert main(argv) == 0
    rows = read_results(tmp_path / "res", "chat")
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert all(r["metric"] == "mtbench_pending_judge" and math.isnan(r["value"]) for r in rows)
    assert rows[0]["metrics"]["mtbench_answered"] == 3
    folder = _run_folder(tmp_path, "chat", rows[0]) / "mt_bench" / "model_answer"
    assert sorted(p.stem for p in folder.glob("*.jsonl")) == [f"{rows[0]['run_name']}-epoch{e}" for e in (1, 2)]
    for path in folder.glob("*.jsonl"):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["question_id"] for r in records] == [81, 82, 83]
        for record in records:
            assert set(record) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
            assert record["model_id"] == path.stem and len(record["choices"][0]["turns"]) == 2


def _commonsense_argv(model_dir, files, tmp_path, eval_sets, *extra):
    """:func:`_argv` for the commonsense family on the local Commonsense170K file, scored on ``eval_sets``."""
    return _argv(
        "commonsense",
        model_dir,
        tmp_path,
        "--train_file",
        str(files["commonsense"]),
        "--eval_data",
        str(files["commonsense_eval"]),
        "--eval_sets",
        *eval_sets,
        *extra,
    )


def test_commonsense_scores_each_set_and_their_average(model_dir, files, tmp_path):
    argv = _commonsense_argv(model_dir, files, tmp_path, ["boolq", "piqa"], "--method", "molora")
    assert main(argv) == 0
    (row,) = read_results(tmp_path / "res", "commonsense")
    metrics = row["metrics"]
    assert row["metric"] == "avg_accuracy" and set(metrics) == {"boolq_accuracy", "piqa_accuracy", "avg_accuracy"}
    assert metrics["avg_accuracy"] == pytest.approx((metrics["boolq_accuracy"] + metrics["piqa_accuracy"]) / 2)
    assert (row["hparams"]["r"], row["hparams"]["lora_alpha"]) == (32, 64)  # Table 9 defaults


@pytest.mark.parametrize(
    ("family", "extra", "message"),
    [
        ("chat", [], "question.jsonl"),
        ("commonsense", [], "LLM-Adapters"),
        ("math", ["--task", "humaneval"], "is not in math.yaml"),
        ("math", ["--attn_implementation", "fast"], "--attn_implementation 'fast'"),
        ("math", ["--max_new_tokens", "600"], "no room for a prompt"),
    ],
)
def test_setup_mistakes_are_one_line_errors(model_dir, tmp_path, capsys, family, extra, message):
    assert main(_argv(family, model_dir, tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_defaults_follow_tables_9_and_12():
    def table(config):
        training, adapter = config.training, config.adapter
        return (
            training.global_batch_size,
            adapter.r,
            adapter.lora_alpha,
            training.learning_rate,
            training.num_train_epochs,
            training.warmup_steps,
        )

    for family in ("math", "code", "chat"):
        assert table(resolve(family)) == (32, 8, 16, 2e-5, 5, 100)
    assert table(resolve("commonsense")) == (16, 32, 64, 1e-4, 3, 100)
    for family, task in TASKS.items():  # subset sizes and length caps as the data specs state them
        config = resolve(family)
        assert config.data.task == task.name and config.adapter.lora_dropout == 0.05 and config.training.bf16
        assert config.adapter.target_modules == LLAMA_TARGETS
        spec = DATASETS[task.dataset]
        assert (config.data.max_train_samples, config.data.max_seq_length) == (spec.default_n, spec.default_max_length)


def test_attention_falls_back_to_sdpa_without_flash_attention():
    assert attention_implementation("auto", bf16=True) == "sdpa"  # no GPU / flash-attn here
    assert attention_implementation("eager", bf16=False) == "eager"


@pytest.mark.parametrize(("n", "world"), [(5, 2), (1, 3), (6, 3)])
def test_shards_cover_everything_with_equal_counts(n, world):
    shards = [shard(n, rank, world) for rank in range(world)]
    assert len({len(indices) for indices, _ in shards}) == 1
    assert sorted(i for indices, real in shards for i in indices[:real]) == list(range(n))


def test_loading_refuses_a_registered_zero3_config(model_dir):
    registered = HfDeepSpeedConfig(json.loads(ZERO3.read_text()))  # what TrainingArguments(deepspeed=zero3) does
    try:
        with pytest.raises(RuntimeError, match="before creating TrainingArguments"):
            load_causal_lm(resolve("math", ["--model_name_or_path", str(model_dir)]).data, bf16=False)
    finally:
        unset_hf_deepspeed_config()
    assert registered.is_zero3()


def test_math_on_a_4bit_base_through_the_cli(model_dir, files, tmp_path):
    """--quantization 4bit (QLoRA's NF4 + double quantization; bitsandbytes runs it on CPU): goat trains on it."""
    argv = _argv(
        "math",
        model_dir,
        tmp_path,
        "--train_file",
        str(files["metamath"]),
        "--eval_data",
        str(files["gsm8k"]),
        "--quantization",
        "4bit",
        "--num_experts",
        "4",
    )
    prepared = prepare(_config(argv))
    model = prepared.trainer.model
    bases = [layer.base_layer for layer in model.adapted_layers().values()]
    assert bases and all(type(base.weight).__name__ == "Params4bit" for base in bases)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    train(prepared)
    assert any("lora_B" in n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n]))
    (row,) = read_results(tmp_path / "res", "math")
    assert row["hparams"]["quantization"] == "4bit" and row["status"] == "complete"


def test_eval_on_start_leaves_the_training_trajectory_unchanged(model_dir, files, tmp_path):
    """The claims ledger turns the zero-shot evaluation off to save time; that must not move a training number.
    Attacked where an evaluation could leak into training: dropout and a shuffled sampler both draw from the
    RNG, and MoLoRA's router and top-k choose experts, so any draw or mode change in the evaluation shows here."""

    def trained(eval_on_start: str, folder: str):
        argv = _commonsense_argv(
            model_dir,
            files,
            tmp_path / folder,
            ["boolq"],
            "--method",
            "molora",
            "--lora_dropout",
            "0.3",
            "--logging_steps",
            "1",
            "--eval_on_start",
            eval_on_start,
            "--save_adapter",
            "false",
        )
        prepared = prepare(_config(argv))
        train(prepared)
        losses = [log["loss"] for log in prepared.trainer.state.log_history if "loss" in log]
        weights = {n: p.detach().clone() for n, p in prepared.trainer.model.named_parameters() if p.requires_grad}
        return losses, weights, read_results(tmp_path / folder / "res", "commonsense")

    losses_with, weights_with, rows_with = trained("true", "with")
    losses_without, weights_without, rows_without = trained("false", "without")
    assert [row["epoch"] for row in rows_with] == [0.0, 1.0] and [row["epoch"] for row in rows_without] == [1.0]
    assert len(losses_with) == 2 and losses_with == losses_without
    assert weights_with.keys() == weights_without.keys()
    assert all(torch.equal(weights_with[n], weights_without[n]) for n in weights_with)
    assert rows_with[-1]["value"] == rows_without[-1]["value"]
