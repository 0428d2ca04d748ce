"""W&B goes offline by itself (and says so once) when its API is unreachable; the user's choice wins."""

from __future__ import annotations

import logging

import pytest

from goat.train import reporters
from goat.train.reporters import configure_reporter


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.setattr(reporters, "network_reachable", lambda *a, **k: False)


def test_wandb_offline_without_network_said_once(no_network, monkeypatch, caplog):
    import os

    with caplog.at_level(logging.WARNING):
        assert configure_reporter(["wandb"], project="goat-glue") == ["wandb"]
        monkeypatch.delenv("WANDB_MODE")
        configure_reporter(["wandb"], project="goat-glue", main_process=False)  # another rank: silent
    assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_PROJECT"] == "goat-glue"
    assert sum("logging offline" in r.message for r in caplog.records) == 1


def test_explicit_mode_is_respected(no_network, monkeypatch):
    import os

    monkeypatch.setenv("WANDB_MODE", "disabled")
    configure_reporter(["wandb"], project="p")
    assert os.environ["WANDB_MODE"] == "disabled"


def test_other_reporters_and_bad_names(no_network):
    assert configure_reporter([], project="p") == [] and configure_reporter(["none"], project="p") == []
    assert configure_reporter(["tensorboard", "wandb"], project="p") == ["tensorboard", "wandb"]
    with pytest.raises(ValueError, match="--report_to 'wandbb'"):
        configure_reporter(["wandbb"], project="p")


def test_unreachable_address_is_detected_quickly():
    assert reporters.network_reachable(("127.0.0.1", 9), timeout_s=0.5) is False


# --------------------------------------------------------------------------- W&B runs a researcher can slice
SLICED_BY = (
    "method",
    "r",
    "lora_alpha",
    "num_experts",
    "top_k",
    "task",
    "model_name_or_path",
    "learning_rate",
    "seed",
    "family",
    "global_batch_size",
    "config_hash",
)


class _Recorder:
    """A stand-in for the ``wandb`` module: records init, config updates and logs (no wandb, no network)."""

    def __init__(self):
        self.run, self.inits, self.logged, self.finished = None, [], [], 0
        self.config = self

    def init(self, **kwargs):
        self.inits.append(kwargs)
        self.run = type("Run", (), {"_label": lambda self, **k: None})()
        self.settings_seen: dict = {}

    def update(self, values, allow_val_change=False):
        self.settings_seen.update(values)

    def __setitem__(self, key, value):
        self.settings_seen[key] = value

    def define_metric(self, *args, **kwargs):
        pass

    def log(self, data):
        self.logged.append(data)

    def finish(self):
        self.finished += 1
        self.run = None


def test_the_wandb_callback_groups_by_configuration_names_every_setting_and_writes_into_the_run_folder(
    tmp_path, monkeypatch
):
    pytest.importorskip("wandb")  # transformers' WandbCallback needs it installed; the recorder replaces it here
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.integrations import WandbCallback

    from goat.train.console import GoatWandbCallback, track_in_wandb

    for name in ("WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_PROJECT", "goat-glue")
    settings = {
        "family": "glue",
        "task": "rte",
        "method": "goat",
        "r": 8,
        "learning_rate": 1e-4,
        "config_hash": "abc123",
    }
    callbacks = [object(), WandbCallback()]
    track_in_wandb(
        callbacks, settings, group="rte-goat-r8a16-e8k2-lr0.0001-abc123", job_type="rte", run_dir=tmp_path / "run"
    )
    callback = callbacks[1]
    assert isinstance(callback, GoatWandbCallback)
    recorder = callback._wandb = _Recorder()
    args = TrainingArguments(output_dir=str(tmp_path / "run"), run_name="rte-goat-s0", report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control, model=None)
    (init,) = recorder.inits
    assert init == {
        "project": "goat-glue",
        "name": "rte-goat-s0",
        "group": "rte-goat-r8a16-e8k2-lr0.0001-abc123",
        "job_type": "rte",
        "dir": str(tmp_path / "run"),
    }
    assert (tmp_path / "run").is_dir()
    # every setting under its one name, over transformers' TrainingArguments entries (same names, same values)
    assert {
        k: recorder.settings_seen[k] for k in settings
    } == settings and "per_device_train_batch_size" in recorder.settings_seen
    # evaluation under eval/, training numbers under train/
    callback.on_log(args, state, control, logs={"eval_accuracy": 0.7, "eval_loss": 0.6, "epoch": 1.0})
    callback.on_log(args, state, control, logs={"loss": 0.5, "aux_loss": 0.01})
    callback.on_predict(
        args, state, control, metrics={"validation_loss": 0.6, "validation_runtime": 1.0}
    )  # Trainer.predict
    keys = {k for data in recorder.logged for k in data}
    assert {
        "eval/accuracy",
        "eval/loss",
        "eval/validation_loss",
        "eval/validation_runtime",
        "train/loss",
        "train/aux_loss",
    } <= keys
    assert not [k for k in keys if k.startswith("train/") and ("accuracy" in k or "validation" in k or "eval" in k)]
    callback.on_train_end(args, state, control)
    assert recorder.finished == 1  # the next run of the process begins its own
    # the user's environment wins
    monkeypatch.setenv("WANDB_RUN_GROUP", "mine")
    monkeypatch.setenv("WANDB_JOB_TYPE", "sweep")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    callback.on_train_begin(args, state, control, model=None)
    assert (recorder.inits[-1]["group"], recorder.inits[-1]["job_type"], recorder.inits[-1]["dir"]) == (
        "mine",
        "sweep",
        str(tmp_path / "elsewhere"),
    )


def test_an_offline_wandb_run_of_the_cli_is_sliceable_and_lives_in_the_run_folder(
    tiny_model_dir, rte_dir, tmp_path, monkeypatch
):
    wandb = pytest.importorskip("wandb")
    from goat.train.results import read_results
    from tests.train.tiny_glue import run_tiny_glue

    for name in ("WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    seen = {}
    finish = wandb.finish

    def finish_and_record(*args, **kwargs):  # the run as it stands when training ends
        run = wandb.run
        seen.update(
            config=dict(run.config),
            group=run.group,
            job_type=run.job_type,
            dir=run.dir,
            summary=dict(run.summary),
            name=run.name,
            project=run.project,
        )
        return finish(*args, **kwargs)

    monkeypatch.setattr(wandb, "finish", finish_and_record)
    code = run_tiny_glue(
        tiny_model_dir, rte_dir, tmp_path, "--report_to", "wandb", "--disable_tqdm", "true", "--logging_steps", "2"
    )
    assert code == 0 and seen, "the run ends with training"
    (row,) = read_results(tmp_path / "res", "glue")
    run_folder = tmp_path / "out" / "glue" / row["run_name"]
    assert seen["name"] == row["run_name"] and seen["project"] == "goat-glue"
    assert seen["group"].startswith("rte-goat-r8a16-e4k2-lr0.0001-") and seen["group"].endswith(row["config_hash"])
    assert seen["job_type"] == "rte"
    config = seen["config"]
    assert {name for name in SLICED_BY if name not in config} == set()
    assert (config["method"], config["r"], config["num_experts"], config["task"], config["config_hash"]) == (
        "goat",
        8,
        4,
        "rte",
        row["config_hash"],
    )
    assert config["model_name_or_path"] == str(tiny_model_dir) and config["learning_rate"] == 1e-4
    summary = set(seen["summary"])
    assert {
        "eval/accuracy",
        "eval/validation_loss",
        "train/loss",
        "train/aux_loss",
        "train/expert_load_per_layer",
    } <= summary
    assert not [k for k in summary if k.startswith("train/") and ("accuracy" in k or "validation" in k)]
    assert str(seen["dir"]).startswith(str(run_folder / "wandb")) and list((run_folder / "wandb").glob("offline-run-*"))
    assert not (cwd / "wandb").exists()
