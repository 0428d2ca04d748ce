"""benchmarks/gpu_train_check.py: ``--smoke`` trains, reloads, unloads and decodes each of its methods on the
CPU and writes JSON and Markdown; the checks it reports catch the faults they name; a real run refuses a
machine without CUDA."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from tests.benchmarks.test_benchmarks_quick import load


@pytest.fixture(scope="module")
def check():
    return load("gpu_train_check")


@pytest.fixture(scope="module")
def smoke_run(check, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("gpu_train_check")
    return check.main(["--smoke", "--output_dir", str(output_dir)]), output_dir


def test_smoke_trains_every_method_and_passes_every_check(smoke_run, check):
    report, output_dir = smoke_run
    settings = check.smoke(check.Settings())
    assert [row["method"] for row in report["rows"]] == [*settings.methods, "goat (4-bit base)"]
    for row in report["rows"]:
        assert row["passed"] and "error" not in row, row
        assert len(row["device_losses"]) == settings.steps and all(math.isfinite(x) for x in row["device_losses"])
    for row in report["rows"][:-1]:  # the CPU against itself: bit-identical runs
        assert row["cpu_losses"] == row["device_losses"] and row["fp32_gap"] == 0.0 and row["reload_gap"] == 0.0
    written = json.loads((output_dir / "gpu_train_check.json").read_text())
    assert written["passed"] is True and written["settings"]["smoke"] is True
    markdown = (output_dir / "gpu_train_check.md").read_text()
    assert "SMOKE RUN (CPU against CPU" in markdown and all(f"| {m} |" in markdown for m in settings.methods)


def test_training_on_the_same_device_twice_repeats_every_loss(check, tmp_path):
    """What the fp32 gap compares: two seeded runs from the same base give the same losses, and a run with
    another learning rate does not (so a gap of 0 is not a check that cannot fail)."""
    settings = check.smoke(check.Settings())
    base, config = check.base_model(settings), check.adapter_config("goat", settings)
    _, first = check.train(copy.deepcopy(base), config, settings, tmp_path / "a", bf16=False)
    _, again = check.train(copy.deepcopy(base), config, settings, tmp_path / "b", bf16=False)
    faster = check.replace(settings, learning_rate=5e-2)
    _, other = check.train(copy.deepcopy(base), config, faster, tmp_path / "c", bf16=False)
    assert check.relative_gap(again, first) == 0.0
    assert check.relative_gap(other, first) > check.FP32_TOLERANCE


def test_unload_check_sees_one_ulp_in_one_base_weight(check):
    settings = check.smoke(check.Settings())
    base = check.base_model(settings)
    model = check.goat.get_goat_model(copy.deepcopy(base), check.adapter_config("goat", settings))
    weight = model.get_base_model().model.layers[1].mlp.gate_proj.weight  # not a target: untouched by the adapter
    with torch.no_grad():
        weight[0, 0] = torch.nextafter(weight[0, 0], torch.tensor(math.inf))
    assert not check.unloads_exactly(model, base)
    clean = check.goat.get_goat_model(copy.deepcopy(base), check.adapter_config("goat", settings))
    assert check.unloads_exactly(clean, base)


def test_relative_gap_fails_a_missing_step(check):
    assert check.relative_gap([1.0, 2.0], [1.0, 2.0, 3.0]) == math.inf
    assert check.relative_gap([], []) == math.inf
    assert check.relative_gap([1.0, 2.002], [1.0, 2.0]) == pytest.approx(1e-3)


def test_real_run_refuses_a_machine_without_cuda(check, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        check.main(["--output_dir", str(tmp_path / "out")])
    assert "no CUDA device" in str(exit_info.value.code)
    assert not (tmp_path / "out").exists()
