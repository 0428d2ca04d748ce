"""A quiet console (a progress bar, no per-layer dicts on stdout; per-layer loads to the loggers) and
the SVD cache on by default in the CLI."""

from __future__ import annotations

import re

import pytest
import torch

from goat.train.console import LAYER_LOAD_TAG
from tests.train.tiny_glue import run_tiny_glue as _cli


@pytest.mark.parametrize("disable_tqdm", ["false", "true"])
def test_console_shows_short_lines_and_loggers_get_layer_histograms(
    tiny_model_dir, rte_dir, tmp_path, capfd, disable_tqdm
):
    # disable_tqdm is explicit: transformers' default follows the logging level, which other tests may change.
    assert _cli(tiny_model_dir, rte_dir, tmp_path, "--report_to", "tensorboard", "--disable_tqdm", disable_tqdm) == 0
    out, err = capfd.readouterr()
    console = out + err
    assert "expert_load/" not in console and "{'loss'" not in console and "'task_loss'" not in console
    assert re.search(r"^epoch 1: .*accuracy \d", console, re.MULTILINE), console
    if disable_tqdm == "false":  # the bar's postfix
        assert "aux=" in console and "load=" in console and "lr=" in console
    else:  # one line per logging step
        assert re.search(r"^step 1: loss \S+ aux \S+ lr \S+ load \S+$", console, re.MULTILINE), console

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = [p for p in (tmp_path / "out").rglob("events.out.tfevents.*")]  # in the run folder
    accumulator = EventAccumulator(str(events), size_guidance={"histograms": 0})
    accumulator.Reload()
    histograms = accumulator.Histograms(LAYER_LOAD_TAG)
    assert len(histograms) == 6  # one per logging step (48 examples / batch 8)
    assert histograms[0].histogram_value.num == 12  # one value per adapted layer: its largest expert share
    assert 0.25 <= histograms[0].histogram_value.min <= histograms[0].histogram_value.max <= 1.0
    assert "train/expert_load_max" in accumulator.Tags()["scalars"]


def test_the_cli_reuses_cached_svds(tiny_model_dir, rte_dir, tmp_path, monkeypatch):
    cache = tmp_path / "svd"
    assert _cli(tiny_model_dir, rte_dir, tmp_path, "--report_to", "none", "--svd_cache_dir", str(cache)) == 0
    assert len(list(cache.glob("*.safetensors"))) == 12  # one entry per adapted weight

    def no_svd(*args, **kwargs):
        raise AssertionError("the second run must take every SVD from the cache")

    monkeypatch.setattr(torch.linalg, "svd", no_svd)
    assert (
        _cli(
            tiny_model_dir,
            rte_dir,
            tmp_path,
            "--report_to",
            "none",
            "--svd_cache_dir",
            str(cache),
            "--overwrite_output_dir",
        )
        == 0
    )
    monkeypatch.undo()
    # --no_svd_cache computes them again (and writes nothing)
    assert (
        _cli(
            tiny_model_dir,
            rte_dir,
            tmp_path,
            "--report_to",
            "none",
            "--no_svd_cache",
            "--svd_cache_dir",
            str(tmp_path / "none"),
            "--overwrite_output_dir",
        )
        == 0
    )
    assert not (tmp_path / "none").exists()
