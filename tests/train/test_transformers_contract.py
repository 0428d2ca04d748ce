"""The transformers range in pyproject.toml is the one tested: GoatTrainer overrides private methods of
transformers' ``Trainer``, so a transformers release that renames or re-signs one must fail here, not
silently stop calling the override."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

import tomllib
import transformers
from packaging.specifiers import SpecifierSet

from goat.train.trainer import GoatTrainer

ROOT = Path(__file__).resolve().parents[2]
# each private Trainer method GoatTrainer overrides, with the parameters transformers passes it
PRIVATE_OVERRIDES = {
    "_maybe_log_save_evaluate": [
        "self",
        "tr_loss",
        "grad_norm",
        "model",
        "trial",
        "epoch",
        "ignore_keys_for_eval",
        "start_time",
        "learning_rate",
    ],
    "_save": ["self", "output_dir", "state_dict"],
    "_load_from_checkpoint": ["self", "resume_from_checkpoint", "model"],
    "_save_optimizer_and_scheduler": ["self", "output_dir"],
    "_prepare_for_training": ["self", "max_steps", "train_dataloader", "resume_from_checkpoint"],
}


def pinned(requirement: str, text: str) -> str:
    match = re.search(rf'"{requirement}([^"]*)"', text)
    assert match, f"{requirement} is not in pyproject.toml's dependencies"
    return match.group(1)


def test_the_installed_transformers_is_inside_the_declared_range_and_matches_requirements():
    declared = SpecifierSet(pinned("transformers", (ROOT / "pyproject.toml").read_text()))
    assert version("transformers") in declared
    requirement = re.search(r"^transformers==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert requirement in declared and requirement == transformers.__version__
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in declared), "the range needs an upper bound"
    tomllib.loads((ROOT / "pyproject.toml").read_text())  # and the file parses


def mismatched_overrides(trainer: type, parent: type) -> list[str]:
    """Private methods of ``parent`` that ``trainer`` overrides, not listed here or with other parameters."""
    overridden = {
        name
        for name, member in vars(trainer).items()
        if name.startswith("_") and not name.startswith("__") and callable(member) and hasattr(parent, name)
    }
    wrong = sorted(overridden ^ set(PRIVATE_OVERRIDES))
    return wrong + [
        name
        for name, parameters in PRIVATE_OVERRIDES.items()
        if hasattr(parent, name) and list(inspect.signature(getattr(parent, name)).parameters) != parameters
    ]


def test_every_private_override_still_exists_in_trainer_with_the_same_parameters():
    assert mismatched_overrides(GoatTrainer, transformers.Trainer) == []


def test_the_check_notices_a_renamed_parameter_and_a_vanished_method():
    class Renamed(transformers.Trainer):
        def _prepare_for_training(self, max_steps, dataloader, resume_from_checkpoint):  # noqa: ANN001, ANN202
            return None

    # a release without _save: the override would never be called
    gone = type(
        "Gone", (), {name: getattr(transformers.Trainer, name) for name in PRIVATE_OVERRIDES if name != "_save"}
    )

    assert mismatched_overrides(GoatTrainer, Renamed) == ["_prepare_for_training"]
    assert mismatched_overrides(GoatTrainer, gone) == ["_save"]
