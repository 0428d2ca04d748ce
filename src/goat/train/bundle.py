"""What a task family is and what its builder hands the runner (a leaf module: builders and runner both import it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from goat.adapters.model import GoatModel
from goat.train.arguments import TaskArguments
from goat.train.run_config import RunConfig

if TYPE_CHECKING:
    from transformers import Trainer

Evaluator = Callable[["Trainer"], dict[str, float]]  # called with the run's GoatTrainer after each epoch


@dataclass
class TaskBundle:
    """A built task: the adapted model, the training data and the per-epoch evaluation."""

    model: GoatModel
    train_dataset: Any
    evaluate: Evaluator
    primary_metric: str
    data_collator: Callable | None = None
    processing_class: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """A task family of the paper: its task-arguments dataclass and the builder of its bundle."""

    name: str
    description: str
    arguments: type[TaskArguments]
    build: Callable[[RunConfig], TaskBundle]
