"""A normal (non-editable) ``pip install .`` carries the configs: every family resolves its settings from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("glue", "vision", "math", "code", "chat", "commonsense")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {**os.environ, "PYTHONPATH": str(target)}


PRINT_EVERY_FAMILY = """
import sys, goat
from goat.train.__main__ import main
print(goat.__file__)
for family, task in zip(sys.argv[1::2], sys.argv[2::2]):
    print("=== " + family, flush=True)
    assert main([family, "--task", task, "--print_config"]) == 0
    sys.stdout.flush()
"""


def test_print_config_of_every_family_from_the_installed_package(installed, tmp_path):
    pairs = [item for family in FAMILIES for item in (family, _a_task(family))]
    result = subprocess.run(
        [sys.executable, "-c", PRINT_EVERY_FAMILY, *pairs],
        env=installed,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    where, *sections = result.stdout.split("=== ")
    assert where.strip().startswith(installed["PYTHONPATH"]), where  # the installed copy, not the source tree
    assert [section.split("\n", 1)[0] for section in sections] == list(FAMILIES)
    for family, section in zip(FAMILIES, sections):
        settings = yaml.safe_load(section.split("\n", 1)[1])
        expected = yaml.safe_load((ROOT / "src" / "goat" / "configs" / f"{family}.yaml").read_text())["defaults"]
        assert settings["r"] == expected["r"] and settings["learning_rate"] == pytest.approx(
            float(expected["learning_rate"])
        )


def _a_task(family: str) -> str:
    tasks = yaml.safe_load((ROOT / "src" / "goat" / "configs" / f"{family}.yaml").read_text())["tasks"]
    return next(iter(tasks))
