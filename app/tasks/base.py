"""The task plug-in's base: what every task answers (`Task`), the V2 output tensors they
share (`warnings`), and the probability helpers the runtimes and the core use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from app.codecs.v2 import encode_tensors, warnings_json
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


T = TypeVar("T")


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

    # What promotion needs (app.monitoring.promotion): what a shadow's answer is compared
    # by, and which of the two comparisons (of labels, of values) applies.
    def compared_values(self, card: ModelCard, values: np.ndarray) -> list[str]:
        """`(N, C)` model outputs -> per row, the text a shadow comparison stores and
        compares: the predicted label, or the first target's value (`repr` of a float)."""
        raise NotImplementedError

    def comparer(self, labels: T, values: T) -> T:
        """The comparison of two versions that applies to this task: `labels` (agreement,
        accuracy) or `values` (differences, errors)."""
        raise NotImplementedError

    def feedback_value(
        self, card: ModelCard, truth: object, index: int, model: str, version: int
    ) -> str:
        """Feedback `labels[index]` (from JSON) for a row of `model` `version` (whose card is
        `card`), as the store keeps it; InvalidInput when it is not a truth of this task."""
        raise NotImplementedError


# Whatever the task, a V2 answer can carry its inputs' warnings (docs/warnings.md).
WARNINGS_OUTPUT = OutputTensor(
    "warnings",
    "BYTES",
    (),
    "per instance, JSON text of a list of {code, message}: the input is unlike the training "
    "data (empty list: nothing to say)",
)


def warning_texts(warnings: Sequence[Sequence[Any]], count: int) -> np.ndarray:
    """The `warnings` output: per row (of `count`), the JSON text of its list of
    `{code, message}` (`warnings`: per row, objects with `code` and `message`)."""
    texts = np.empty(count, dtype=object)
    texts[:] = warnings_json(warnings, count)
    return texts
