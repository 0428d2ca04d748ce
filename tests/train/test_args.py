"""Flags, YAML defaults and their precedence: dataclass < defaults < tasks.<task> < command line."""

from __future__ import annotations

import pytest

from goat.train.args import RunArgs, load_yaml_defaults, parse_args


def test_paper_defaults_for_glue_table_11():
    args = parse_args(["glue", "--task", "rte"])
    assert (args.rank, args.alpha, args.experts, args.top_k) == (8, 16, 8, 2)
    assert (args.lr, args.batch_size, args.epochs, args.max_length, args.aux_loss_coef) == (1e-4, 256, 50, 128, 1e-3)
    assert parse_args(["glue", "--task", "cola"]).epochs == 10


def test_command_line_beats_task_section_beats_defaults(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("defaults: {rank: 4, lr: 0.1}\ntasks:\n  rte: {rank: 16}\n  cola: {}\n")
    assert parse_args(["glue", "--config", str(config), "--task", "cola"]).rank == 4
    assert parse_args(["glue", "--config", str(config), "--task", "rte"]).rank == 16
    args = parse_args(["glue", "--config", str(config), "--task", "rte", "--rank", "32", "--lr", "2e-5"])
    assert (args.rank, args.lr) == (32, 2e-5)


def test_boolean_and_list_flags():
    args = parse_args(["glue", "--task", "rte", "--bf16", "--no-save-adapter", "--target-modules", "query", "value"])
    assert args.bf16 is True and args.save_adapter is False and args.target_modules == ["query", "value"]


def test_gradient_accumulation_from_global_batch():
    args = RunArgs(batch_size=256, per_device_batch=32)
    assert args.gradient_accumulation(world_size=1) == 8
    assert args.gradient_accumulation(world_size=8) == 1
    with pytest.raises(ValueError, match="not a multiple"):
        RunArgs(batch_size=100, per_device_batch=32).gradient_accumulation(world_size=1)
    assert RunArgs(grad_accum=3).gradient_accumulation(world_size=4) == 3


def test_unknown_task_and_yaml_key_are_named(tmp_path):
    with pytest.raises(ValueError, match="'rtee' is not in glue.yaml"):
        load_yaml_defaults("glue", "rtee")
    config = tmp_path / "bad.yaml"
    config.write_text("defaults: {rnak: 4}\n")
    with pytest.raises(ValueError, match="unknown keys \\['rnak'\\]"):
        load_yaml_defaults("glue", None, str(config))


def test_goat_config_from_flags():
    args = parse_args(["glue", "--task", "rte", "--method", "goat", "--scaling", "2.5"])
    config = args.goat_config(["query"], ["classifier"])
    assert (config.method, config.r, config.num_experts, config.top_k, config.scaling) == ("goat", 8, 8, 2, 2.5)
    assert config.modules_to_save == ["classifier"]
    with pytest.raises(ValueError, match="--scaling 'big'"):
        parse_args(["glue", "--task", "rte", "--scaling", "big"]).goat_config(["query"], [])
