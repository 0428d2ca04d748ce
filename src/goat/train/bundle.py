"""What a task family is and what its builder hands the runner (a leaf module: builders and runner both import it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from goat.model import GoatModel

if TYPE_CHECKING:
    from goat.train.arguments import TaskArguments
    from goat.train.settings import RunConfig
    from goat.train.trainer import GoatTrainer

Evaluator = Callable[["GoatTrainer"], dict[str, float]]


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
