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
import orjson

from app.codecs.v2 import OUTPUT_NAMES, encode_response, encode_tensors
from app.errors import InvalidInput
from app.schemas.card import CardExample, ModelCard

# Served probabilities stay within [floor, 1 - (C-1) floor] (see bound_probabilities): a card
# without an out_of_domain section gets this floor; no held-out set here resolves finer.
DEFAULT_PROBABILITY_FLOOR = 1e-4


def bound_probabilities(probabilities: np.ndarray, floor: float) -> np.ndarray:
    """(N, C) probabilities with every entry at least `floor`: p' = floor + (1 - C*floor) * p.

    An affine shrink towards uniform, so the order of the classes and the sum (1) are kept, a
    probability of 1 becomes 1 - (C-1)*floor and one of 0 becomes `floor`. Rows that are not
    finite pass through (the caller refuses them)."""
    count = probabilities.shape[1]
    if floor <= 0.0:
        return probabilities
    bounded: np.ndarray = floor + (1.0 - count * floor) * probabilities
    return bounded


def binary_to_two_columns(probabilities: np.ndarray) -> np.ndarray:
    """A sigmoid output (N, 1) becomes (N, 2): P(label 0), P(label 1); others unchanged."""
    if probabilities.ndim == 2 and probabilities.shape[1] == 1:
        positive = probabilities[:, 0]
        return np.stack([1.0 - positive, positive], axis=1)
    return probabilities


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
    # What the card's `labels` name: the classes, or the predicted targets.
    outputs_heading: ClassVar[str]
    # Whether the model's outputs are class probabilities (a scikit-learn estimator's
    # predict_proba) rather than target values (its predict).
    probabilities: ClassVar[bool]
    # What the warm-up replay calls the outputs it compares ("probabilities", "predictions").
    replayed: ClassVar[str]
    # The report's held-out quality layout (app.report.quality): "classes" (per class and a
    # confusion matrix) or "values" (errors of the predicted values).
    quality_layout: ClassVar[str]

    def probability_floor(self, card: ModelCard) -> float | None:
        """The floor served outputs are bounded to (`bound_probabilities`), None where they
        are not probabilities and pass through as they are."""
        raise NotImplementedError

    def model_outputs(self, values: np.ndarray) -> np.ndarray:
        """A runtime's raw `(N, K)` float64 outputs -> the task's `(N, C)` outputs (a sigmoid
        classifier's one column becomes two); unchanged by default."""
        return values

    def card_task(self, count: int) -> str:
        """The card's `task` for a model of this task with `count` labels (classes or
        targets)."""
        raise NotImplementedError

    def example(
        self, instance: Any, labels: Sequence[str], output: Sequence[float] | None
    ) -> CardExample:
        """A card example: `instance` with the model's `output` for it recorded as the task
        records it (the most probable label and the probabilities, or the predicted values),
        or, where the output is not known yet (None), a placeholder the card accepts."""
        raise NotImplementedError

    def replay_scale(self, recorded: np.ndarray) -> np.ndarray:
        """What each difference from the `recorded` outputs (any shape) is divided by when a
        replay (warm-up, import) checks that outputs are reproduced: 1 for probabilities
        (0-1, absolute), the value itself (at least 1) for values in a target's unit."""
        raise NotImplementedError

    def charts(self, card: ModelCard) -> tuple[str, ...]:
        """The held-out quality charts of the report page that apply to this version (drawn
        by `app.report.charts`): "confusion_matrix", "roc_curve", "predicted_vs_true",
        "residuals"."""
        raise NotImplementedError

    def errors_lead(self, shown: int, wrong: int | None) -> str:
        """The report's words above the `shown` held-out mistakes (`wrong`: how many the
        model made in all, where recorded)."""
        raise NotImplementedError

    def outputs(self, card: ModelCard) -> list[OutputTensor]:
        """The V2 outputs of a version, in the order a request without `outputs` gets."""
        raise NotImplementedError

    def encode_v1(self, card: ModelCard, values: np.ndarray) -> list[dict[str, Any]]:
        """`(N, C)` model outputs -> one friendly-API prediction object per row."""
        raise NotImplementedError

    def encode_v2(
        self,
        card: ModelCard,
        model: str,
        version: int,
        request_id: str | None,
        values: np.ndarray,
        outputs: Sequence[tuple[str, bool]],
        warnings: Sequence[Sequence[Any]],
    ) -> tuple[bytes, dict[str, str], str]:
        """(body, extra headers, media type) of a V2 infer response of `model` `version`
        holding the `outputs` asked for ((name, as binary?) each, names from
        `outputs_of(card)`) from `(N, C)` model outputs and the rows' warnings (per row,
        objects with `code` and `message`)."""
        tensors = [
            (
                name,
                warning_texts(warnings, len(values))
                if name == WARNINGS_OUTPUT.name
                else self.tensor(card, name, values),
                binary,
            )
            for name, binary in outputs
        ]
        return encode_tensors(model, version, request_id, tensors)

    def tensor(self, card: ModelCard, name: str, values: np.ndarray) -> np.ndarray:
        """The V2 output `name` (one of `outputs(card)`) for `(N, C)` model outputs."""
        raise NotImplementedError

    def explained_prediction(
        self, card: ModelCard, outputs: list[float]
    ) -> tuple[int, dict[str, Any]]:
        """One row's `C` model outputs -> (the output column an explanation attributes, the
        prediction as `:predict` gives it)."""
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
    outputs_heading = "Labels"
    probabilities = True
    replayed = "probabilities"
    quality_layout = "classes"

    def probability_floor(self, card: ModelCard) -> float | None:
        checks = card.out_of_domain
        return checks.probability_floor if checks is not None else DEFAULT_PROBABILITY_FLOOR

    def model_outputs(self, values: np.ndarray) -> np.ndarray:
        return binary_to_two_columns(values)

    def card_task(self, count: int) -> str:
        return "binary-classification" if count == 2 else "multiclass-classification"

    def example(
        self, instance: Any, labels: Sequence[str], output: Sequence[float] | None
    ) -> CardExample:
        if output is None:
            return CardExample(instance=instance, label=labels[0])
        # The first most probable class on a tie (NumPy's argmax), before rounding.
        label = labels[max(range(len(output)), key=output.__getitem__)]
        values = [round(float(v), 7) for v in output]
        return CardExample(instance=instance, label=label, probabilities=values)

    def replay_scale(self, recorded: np.ndarray) -> np.ndarray:
        return np.ones_like(recorded, dtype=np.float64)

    def charts(self, card: ModelCard) -> tuple[str, ...]:
        # A ROC curve needs one positive class.
        if card.task == "binary-classification":
            return ("confusion_matrix", "roc_curve")
        return ("confusion_matrix",)

    def errors_lead(self, shown: int, wrong: int | None) -> str:
        if wrong is None:
            return f"{shown} held-out rows the model got wrong."
        return (
            f"{shown} of the {wrong:,} held-out rows the model got wrong, most confident "
            "mistakes first."
        )

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

    def explained_prediction(
        self, card: ModelCard, outputs: list[float]
    ) -> tuple[int, dict[str, Any]]:
        # Served as `:predict` serves them: bounded away from 0 and 1 (the attributions stay
        # on the model's own scale; the bound moves them by less than the completeness
        # tolerance). The explained class is the predicted one.
        floor = self.probability_floor(card) or 0.0
        probabilities = bound_probabilities(np.array([outputs]), floor)[0].tolist()
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return best, {
            "label": card.labels[best],
            "probabilities": dict(zip(card.labels, probabilities, strict=True)),
        }

    def encode_v2(
        self,
        card: ModelCard,
        model: str,
        version: int,
        request_id: str | None,
        values: np.ndarray,
        outputs: Sequence[tuple[str, bool]],
        warnings: Sequence[Sequence[Any]],
    ) -> tuple[bytes, dict[str, str], str]:
        # The codec's own writer of label and probabilities (faster than tensor by tensor).
        return encode_response(model, version, request_id, card.labels, values, outputs, warnings)

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
    outputs_heading = "Targets"
    probabilities = False
    replayed = "predictions"
    quality_layout = "values"

    def probability_floor(self, card: ModelCard) -> float | None:
        # Target values, not probabilities: never bounded.
        return None

    def card_task(self, count: int) -> str:
        return "regression"

    def example(
        self, instance: Any, labels: Sequence[str], output: Sequence[float] | None
    ) -> CardExample:
        if output is None:
            return CardExample(instance=instance)
        return CardExample(instance=instance, prediction=[round(float(v), 7) for v in output])

    def replay_scale(self, recorded: np.ndarray) -> np.ndarray:
        # In the target's unit: relative, so a large target is not held to 1e-x absolute.
        scale: np.ndarray = np.maximum(1.0, np.abs(recorded))
        return scale

    def charts(self, card: ModelCard) -> tuple[str, ...]:
        return ("predicted_vs_true", "residuals")

    def errors_lead(self, shown: int, wrong: int | None) -> str:
        return (
            f"The {shown} held-out rows with the largest absolute errors (true and predicted "
            "values), largest first."
        )

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

    def explained_prediction(
        self, card: ModelCard, outputs: list[float]
    ) -> tuple[int, dict[str, Any]]:
        # The first target is the one explained.
        return 0, self.encode_v1(card, np.array([outputs]))[0]

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


# The tasks by their kind (`synergy import --task`), from the one table.
TASK_KINDS: dict[str, Task] = {task.kind: task for task in TASKS.values()}


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


def warning_texts(warnings: Sequence[Sequence[Any]], count: int) -> np.ndarray:
    """The `warnings` output: per row (of `count`), the JSON text of its list of
    `{code, message}` (`warnings`: per row, objects with `code` and `message`)."""
    texts = np.empty(count, dtype=object)
    for index in range(count):
        found = warnings[index] if index < len(warnings) else ()
        listed = [{"code": w.code, "message": w.message} for w in found]
        texts[index] = orjson.dumps(listed).decode()
    return texts
