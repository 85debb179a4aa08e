"""What a model's task means, in one place: one plug-in per task, registered in `TASKS`.

A task says what the model's output `(N, C)` is (class probabilities, or predicted target
values), how it is written on each protocol (the friendly API's prediction objects, the V2
output tensors and their metadata) and which held-out metrics describe it. Protocols ask the
card's task (`task_of(card)`) instead of switching on `card.task` themselves, so a new task is
one class here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from app.codecs.v2 import OUTPUT_NAMES
from app.errors import InvalidInput
from app.schemas.card import ModelCard


@dataclass(frozen=True)
class OutputTensor:
    """One V2 output of a task: its name, datatype and the shape of one row's part."""

    name: str
    datatype: str
    row_shape: tuple[int, ...]
    description: str


class LiveFigures(Protocol):
    """The live figures monitoring can compute for a version (app.monitoring.quality)."""

    def labelled(self, card: ModelCard, feedback_rows: int) -> dict[str, Any]: ...

    def valued(self, card: ModelCard) -> dict[str, Any]: ...


class Task:
    """The behaviour a task plug-in provides (see the module docstring)."""

    kind: ClassVar[str]
    # The held-out metrics the card and the report show, and that feedback recomputes live.
    metric_names: ClassVar[tuple[str, ...]]

    def outputs(self, card: ModelCard) -> list[OutputTensor]:
        """The V2 outputs of a version, in the order a request without `outputs` gets."""
        raise NotImplementedError

    def encode_v1(self, card: ModelCard, values: np.ndarray) -> list[dict[str, Any]]:
        """`(N, C)` model outputs -> one friendly-API prediction object per row."""
        raise NotImplementedError

    def tensor(self, card: ModelCard, name: str, values: np.ndarray) -> np.ndarray:
        """The V2 output `name` (one of `outputs(card)`) for `(N, C)` model outputs."""
        raise NotImplementedError

    # What monitoring needs (app.monitoring): the label a row is counted and stored under,
    # and how a feedback truth is checked and stored.
    def predicted_labels(self, card: ModelCard, values: np.ndarray) -> list[str]:
        """`(N, C)` model outputs -> the label each row is counted under in
        `synergy_predictions_total` and stored with ("" where the task has no label)."""
        raise NotImplementedError

    def live_quality(
        self, card: ModelCard, feedback_rows: int, live: LiveFigures
    ) -> dict[str, Any]:
        """The task's part of a version's live monitoring report, from `live`."""
        raise NotImplementedError

    def feedback_value(
        self, card: ModelCard, truth: object, index: int, model: str, version: int
    ) -> str:
        """Feedback `labels[index]` (from JSON) for a row of `model` `version` (whose card is
        `card`), as the store keeps it; InvalidInput when it is not a truth of this task."""
        raise NotImplementedError


class ClassificationTask(Task):
    """Class probabilities: `label` (the most probable class) and `probabilities`."""

    kind = "classification"
    metric_names = ("accuracy", "precision_macro", "recall_macro", "f1_macro")

    def outputs(self, card: ModelCard) -> list[OutputTensor]:
        count = len(card.labels)
        return [
            OutputTensor(OUTPUT_NAMES[0], "BYTES", (), "the most probable class"),
            OutputTensor(
                OUTPUT_NAMES[1],
                "FP32",
                (count,),
                "predict_proba: the probability of each label, in the order of labels",
            ),
        ]

    def encode_v1(self, card: ModelCard, values: np.ndarray) -> list[dict[str, Any]]:
        labels = card.labels
        # Plain Python over a few classes: on the event loop, 4x cheaper than NumPy's calls;
        # the first most probable class on a tie, as NumPy's argmax.
        return [
            {
                "label": labels[max(range(len(row)), key=row.__getitem__)],
                "probabilities": dict(zip(labels, row, strict=True)),
            }
            for row in values.tolist()
        ]

    def tensor(self, card: ModelCard, name: str, values: np.ndarray) -> np.ndarray:
        if name == OUTPUT_NAMES[0]:
            return np.array([card.labels[i] for i in np.argmax(values, axis=1).tolist()])
        return values.astype(np.float32)

    def live_quality(
        self, card: ModelCard, feedback_rows: int, live: LiveFigures
    ) -> dict[str, Any]:
        return live.labelled(card, feedback_rows)

    def predicted_labels(self, card: ModelCard, values: np.ndarray) -> list[str]:
        # The first most probable label on a tie, as the response (NumPy's argmax).
        labels = card.labels
        return [labels[i] for i in np.asarray(values).argmax(axis=1).tolist()]

    def feedback_value(
        self, card: ModelCard, truth: object, index: int, model: str, version: int
    ) -> str:
        known = list(card.labels)
        if not isinstance(truth, str) or truth not in known:
            raise InvalidInput(
                f"labels[{index}]: {truth!r} is not a label of model {model} version "
                f"{version}; use one of {known} or null"
            )
        return truth


class RegressionTask(Task):
    """Predicted target values: V1 `value` (one target) or `values` by target name; V2
    `predict` (FP32 [N] or [N, T]) and, for several targets, one FP32 [N] output per target."""

    kind = "regression"
    metric_names = ("mae", "rmse", "r2")
    PREDICT = "predict"

    def outputs(self, card: ModelCard) -> list[OutputTensor]:
        targets = card.labels
        if len(targets) == 1:
            return [OutputTensor(self.PREDICT, "FP32", (), f"the predicted {targets[0]}")]
        return [
            OutputTensor(
                self.PREDICT,
                "FP32",
                (len(targets),),
                "every predicted target, in the order " + ", ".join(targets),
            ),
            *(OutputTensor(t, "FP32", (), f"the predicted {t}") for t in targets),
        ]

    def encode_v1(self, card: ModelCard, values: np.ndarray) -> list[dict[str, Any]]:
        targets = card.labels
        if len(targets) == 1:
            return [{"value": row[0]} for row in values.tolist()]
        return [{"values": dict(zip(targets, row, strict=True))} for row in values.tolist()]

    def tensor(self, card: ModelCard, name: str, values: np.ndarray) -> np.ndarray:
        as_fp32 = values.astype(np.float32)
        if name == self.PREDICT:
            return as_fp32[:, 0] if len(card.labels) == 1 else as_fp32
        return as_fp32[:, card.labels.index(name)]

    def live_quality(
        self, card: ModelCard, feedback_rows: int, live: LiveFigures
    ) -> dict[str, Any]:
        return live.valued(card)

    def predicted_labels(self, card: ModelCard, values: np.ndarray) -> list[str]:
        # A value has no label: counting the argmax of the targets would name a target.
        return [""] * len(values)

    def feedback_value(
        self, card: ModelCard, truth: object, index: int, model: str, version: int
    ) -> str:
        targets = len(card.labels)
        values: list[Any] = truth if isinstance(truth, list) else [truth]
        try:
            if isinstance(truth, str) or len(values) != targets:
                raise ValueError
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            raise InvalidInput(
                f"labels[{index}]: model {model} is a regressor: send its true value, "
                + ("a number" if targets == 1 else f"a list of {targets} numbers")
                + " (or null)"
            ) from None
        return json.dumps(numbers)


CLASSIFICATION = ClassificationTask()
REGRESSION = RegressionTask()

# The one table of tasks: card task -> plug-in.
TASKS: dict[str, Task] = {
    "binary-classification": CLASSIFICATION,
    "multiclass-classification": CLASSIFICATION,
    "regression": REGRESSION,
}


def task_of(card: ModelCard) -> Task:
    """The plug-in of the card's task."""
    return TASKS[card.task]


# Whatever the task, a V2 answer can carry its inputs' warnings (docs/warnings.md).
WARNINGS_OUTPUT = OutputTensor(
    "warnings",
    "BYTES",
    (),
    "per instance, JSON text of a list of {code, message}: the input is unlike the training "
    "data (empty list: nothing to say)",
)


def outputs_of(card: ModelCard) -> list[OutputTensor]:
    """Every V2 output of a version: its task's, then `warnings`."""
    return [*task_of(card).outputs(card), WARNINGS_OUTPUT]


def output_names(card: ModelCard) -> Sequence[str]:
    """The V2 output names of a version."""
    return [output.name for output in outputs_of(card)]
