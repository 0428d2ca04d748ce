"""The benchmarks' quick modes run end to end and report every row (timings are not asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def test_layer_speed_quick(tmp_path: Path) -> None:
    layer_speed = load("layer_speed")
    threads = torch.get_num_threads()
    try:
        rows = layer_speed.main(["--quick", "--threads", "1", "--json", str(tmp_path / "ls.json")])
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide
    assert [r.variant for r in rows] == list(layer_speed.VARIANTS)
    assert rows[0].ratio_to_lora == 1.0 and all(r.median_ms > 0 for r in rows)
    assert len(json.loads((tmp_path / "ls.json").read_text())["rows"]) == len(layer_speed.VARIANTS)


def test_per_expert_loop_reference_matches_goat() -> None:
    layer_speed = load("layer_speed")
    setting = layer_speed.Setting(features=48, tokens=64, r=8, num_experts=4, top_k=2, lora_dropout=0.0)
    assert layer_speed.check_loop_matches_goat(layer_speed.build_variants(setting), setting) < 1e-4


def test_step_cost_smoke(tmp_path: Path) -> None:
    """One forked child per method; ``--threads 1`` keeps the children off the OpenMP pool that
    earlier tests started in this process (a pool does not survive a fork)."""
    step_cost = load("step_cost")
    results = step_cost.main(["--smoke", "--threads", "1", "--json", str(tmp_path / "sc.json")])
    assert [r.method for r in results] == list(step_cost.METHODS)
    lora = next(r for r in results if r.method == "lora")
    assert lora.time_ratio == 1.0 and lora.peak_ratio == 1.0
    assert all(r.trainable > 0 and r.step_ms > 0 and r.peak_mib > 0 for r in results)
    assert all(not math.isnan(r.time_ratio) for r in results)
    assert len(json.loads((tmp_path / "sc.json").read_text())["rows"]) == len(step_cost.METHODS)


def test_svd_init_quick(tmp_path: Path) -> None:
    svd_init = load("svd_init")
    shapes, models = svd_init.main(["--quick", "--json", str(tmp_path / "svd.json")])
    assert len(shapes) == 3 and [m.backbone for m in models] == ["tiny"]
    assert all(s.svd_s > 0 and s.hit_s > 0 for s in shapes)


def test_import_time_runs_every_command(tmp_path: Path) -> None:
    import_time = load("import_time")
    rows = import_time.main(["--rounds", "1", "--json", str(tmp_path / "it.json")])
    assert [r.command for r in rows] == list(import_time.COMMANDS)
    assert (
        all(r.median_s > 0 for r in rows) and next(r for r in rows if r.command == "import torch").ratio_to_torch == 1.0
    )
    assert len(json.loads((tmp_path / "it.json").read_text())["rows"]) == len(import_time.COMMANDS)
