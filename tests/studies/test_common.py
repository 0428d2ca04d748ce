"""Study plumbing: flag precedence, run naming and tagging, clear errors, min-max normalisation."""

from __future__ import annotations

import argparse

import pytest

from goat.studies import common


def _settings(*argv: str) -> common.StudySettings:
    parser = argparse.ArgumentParser()
    common.add_common_arguments(parser, family="vision", tasks=["cars", "dtd"])
    return common.resolve(parser.parse_args(list(argv)), "demo", family="vision", tasks=["cars", "dtd"])


def test_paper_defaults_and_smoke_defaults():
    full = _settings()
    assert [str(t) for t in full.targets] == ["vision:cars", "vision:dtd"] and "model_name_or_path" not in full.base
    assert full.out.as_posix() == "results/studies/demo" and full.pick(None, "paper", "smoke") == "paper"
    smoke = _settings("--smoke", "--tasks", "tweet_sentiment", "math:gsm8k")
    assert [str(t) for t in smoke.targets] == ["glue:tweet_sentiment", "math:gsm8k"]
    assert (
        smoke.base["model_name_or_path"] == "embedded"
        and smoke.base["max_seq_length"] == 32
        and smoke.pick(None, 1, 2) == 2
    )
    assert smoke.pick(7, 1, 2) == 7 and smoke.out.name == "demo-smoke"


def test_run_settings_precedence_name_and_study_tag():
    settings = _settings("--smoke", "--max_seq_length", "24", "--set", "learning_rate=0.002", "bf16=false")
    run = common.Run("goat-x y", common.Target("glue", "tweet_sentiment"), 3, {"method": "goat", "r": 16})
    config = common.run_config(settings, run)
    data, training = config.data, config.training
    assert (data.max_seq_length, training.learning_rate, training.bf16, config.adapter.r, training.seed) == (
        24,
        0.002,
        False,
        16,
        3,
    )
    assert training.global_batch_size == 16  # from configs/glue.yaml tasks: tweet_sentiment
    assert training.run_name == "demo-goat-x_y-tweet_sentiment-s3" and training.study == "demo" and training.smoke


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "learning_rate"], "SETTING=VALUE"),
        (["--set", "seed=1"], "use --tasks / --seeds"),
        (["--tasks", "vision:"], "family:task"),
    ],
)
def test_bad_flags_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        _settings(*argv)


@pytest.mark.parametrize(
    ("item", "message"),
    [("not_a_setting=1", "unknown flag --not_a_setting"), ("bf16=maybe", "maybe"), ("r=eight", "eight")],
)
def test_bad_set_values_are_named_when_the_run_is_resolved(item, message):
    settings = _settings("--smoke", "--set", item)
    with pytest.raises((ValueError, SystemExit)):
        common.run_config(settings, common.Run("x", common.Target("glue", "tweet_sentiment"), 0, {}))


def test_a_study_refuses_set_of_what_it_varies():
    settings = _settings("--set", "learning_rate=0.1")
    run = common.Run("x", common.Target("glue", "tweet_sentiment"), 0, {"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="varies these itself"):
        common.run_config(settings, run)


def test_min_max_and_task_average():
    assert common.min_max([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert common.min_max([1.0, 1.0]) == [0.5, 0.5]

    def result(task: str, seed: int, value: float) -> common.RunResult:
        run = common.Run("c", common.Target("vision", task), seed, {}, {"config": "c"})
        return common.RunResult(run, "accuracy", value, {"best_epoch": 1, "run_name": "r"}, None, 8)

    results = [result("cars", 0, 10.0), result("cars", 1, 20.0), result("dtd", 0, 40.0)]
    assert common.average_over_tasks(results, lambda r: r.run.columns["config"]) == {"c": pytest.approx(27.5)}
