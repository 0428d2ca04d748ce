"""scripts/*.sh: each makes one valid call of its study, paper grid by default and --smoke with SMOKE=1."""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path

import pytest

from goat.studies import common
from goat.train.settings import resolve

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {
    "ablation.sh": "ablation",
    "lr_sweep.sh": "lr_sweep",
    "segments.sh": "segments",
    "scaling_rank.sh": "scaling_rank",
    "loss_curves.sh": "loss_curves",
    "rank_sweep.sh": "rank_sweep",
    "experts_sweep.sh": "experts_sweep",
    "routing.sh": "routing",
}


def _call(script: str, smoke: str, tmp_path: Path) -> list[str]:
    """Run the script with a stand-in interpreter that records its arguments."""
    record = tmp_path / "argv.txt"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "SMOKE": smoke}
    subprocess.run(["bash", str(ROOT / "scripts" / script)], env=env, check=True, capture_output=True, text=True)
    return record.read_text().splitlines()


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_calls_its_study_with_valid_flags(script, tmp_path):
    module = importlib.import_module(f"goat.studies.{SCRIPTS[script]}")
    for smoke in ("0", "1"):
        argv = _call(script, smoke, tmp_path)
        assert argv[:2] == ["-m", f"goat.studies.{SCRIPTS[script]}"]
        ns = module.build_parser().parse_args(argv[2:])
        settings = common.resolve(ns, SCRIPTS[script], family="vision", tasks=["cars"])
        assert ns.smoke == (smoke == "1")
        if smoke == "1":
            assert [str(t) for t in settings.targets] == ["glue:tweet_sentiment"] and settings.base[
                "model_name_or_path"
            ] == "embedded"
        else:
            assert (
                settings.targets and "model_name_or_path" not in settings.base
            )  # the family YAML's (a GPU-sized paper model)
            for target in settings.targets:  # every paper task exists in its configs/<family>.yaml
                assert resolve(target.family, ["--task", target.task]).data.model_name_or_path != "embedded"
