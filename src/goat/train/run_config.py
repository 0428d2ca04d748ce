"""A resolved run: its family and its three dataclasses (what :mod:`goat.train.settings` resolves)."""

from __future__ import annotations

import dataclasses
import enum
import functools
from dataclasses import dataclass
from typing import Any

from transformers import TrainingArguments

from goat.adapters.config import GoatConfig
from goat.train.arguments import GoatTrainingArguments, TaskArguments


@dataclass
class RunConfig:
    """A resolved run: its family and its three dataclasses.

    ``training`` is built with ``deepspeed=None``: transformers registers a DeepSpeed config as soon as
    a ``TrainingArguments`` holding one exists, and under ZeRO-3 ``from_pretrained`` would then
    partition the weights that the adapters' SVD initialisation reads. The runner adds ``deepspeed``
    once the model is built.
    """

    family: str
    data: TaskArguments
    adapter: GoatConfig
    training: GoatTrainingArguments
    deepspeed: str | None = None
    # The training settings as the YAML layers and flags wrote them, before TrainingArguments or the global
    # batch derive anything from them (what --print_config writes); empty for a RunConfig built in code.
    written: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def settings(self) -> dict[str, Any]:
        """Every setting by name: the adapter's and the task's, this project's run settings, and the
        transformers training arguments that differ from transformers' defaults."""
        ours = {f.name for f in dataclasses.fields(GoatTrainingArguments)} - {
            f.name for f in dataclasses.fields(TrainingArguments)
        }
        changed = _changed_training_arguments(self.training)
        values = {"family": self.family, **dataclasses.asdict(self.data), **self.adapter.to_dict()}
        values.update({name: plain(getattr(self.training, name)) for name in sorted(ours | changed | {"output_dir"})})
        values["deepspeed"] = self.deepspeed
        return values


@functools.cache
def _training_defaults() -> TrainingArguments:
    return TrainingArguments(output_dir="unused")


def _changed_training_arguments(training: TrainingArguments) -> set[str]:
    defaults = _training_defaults()
    return {
        f.name
        for f in dataclasses.fields(TrainingArguments)
        if f.init
        and f.name not in ("output_dir", "deepspeed")
        and plain(getattr(training, f.name)) != plain(getattr(defaults, f.name))
    }


def plain(value: Any) -> Any:
    """Enums as their values, so settings print and hash as the user wrote them."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
