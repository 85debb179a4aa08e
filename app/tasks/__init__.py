"""What a model's task means, in one place: one plug-in per task, registered in `TASKS`.

A task says what the model's output `(N, C)` is (class probabilities, or predicted target
values), how it is written on each protocol (the friendly API's prediction objects, the V2
output tensors and their metadata) and which held-out metrics describe it. Protocols ask the
card's task (`task_of(card)`) instead of switching on `card.task` themselves, so a new task is
one class here.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.schemas.card import ModelCard
from app.tasks.base import (
    DEFAULT_PROBABILITY_FLOOR,
    WARNINGS_OUTPUT,
    LiveFigures,
    OutputTensor,
    Task,
    binary_to_two_columns,
    bound_probabilities,
    warning_texts,
)
from app.tasks.classification import ClassificationTask
from app.tasks.regression import RegressionTask

CLASSIFICATION = ClassificationTask()
REGRESSION = RegressionTask()

# The one table of tasks: card task -> plug-in.
TASKS: dict[str, Task] = {
    "binary-classification": CLASSIFICATION,
    "multiclass-classification": CLASSIFICATION,
    "regression": REGRESSION,
}


# The tasks by their kind (`synergy import --task`), from the one table.
TASK_KINDS: dict[str, Task] = {task.kind: task for task in TASKS.values()}


def task_of(card: ModelCard) -> Task:
    """The plug-in of the card's task."""
    return TASKS[card.task]


def outputs_of(card: ModelCard) -> list[OutputTensor]:
    """Every V2 output of a version: its task's, then `warnings`."""
    return [*task_of(card).outputs(card), WARNINGS_OUTPUT]


def output_names(card: ModelCard) -> Sequence[str]:
    """The V2 output names of a version."""
    return [output.name for output in outputs_of(card)]


__all__ = [
    "CLASSIFICATION",
    "DEFAULT_PROBABILITY_FLOOR",
    "REGRESSION",
    "TASKS",
    "TASK_KINDS",
    "WARNINGS_OUTPUT",
    "ClassificationTask",
    "LiveFigures",
    "OutputTensor",
    "RegressionTask",
    "Task",
    "binary_to_two_columns",
    "bound_probabilities",
    "output_names",
    "outputs_of",
    "task_of",
    "warning_texts",
]
