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
