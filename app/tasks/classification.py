"""The classification task: class probabilities out, labels and their probabilities on
every protocol, accuracy and calibration as its metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.codecs.v2 import OUTPUT_NAMES, encode_response
from app.errors import InvalidInput
from app.schemas.card import CardExample, ModelCard
from app.tasks.base import (
    DEFAULT_PROBABILITY_FLOOR,
    LiveFigures,
    OutputTensor,
    T,
    Task,
    binary_to_two_columns,
    bound_probabilities,
)


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
            labels: np.ndarray = np.asarray(card.labels, dtype=object)
            best: np.ndarray = labels[values.argmax(axis=1)]
            return best
        return values.astype(np.float32)

    def live_quality(
        self, card: ModelCard, feedback_rows: int, live: LiveFigures
    ) -> dict[str, Any]:
        return live.labelled(card, feedback_rows)

    def predicted_labels(self, card: ModelCard, values: np.ndarray) -> list[str]:
        # The first most probable label on a tie, as the response (NumPy's argmax).
        labels = card.labels
        return [labels[i] for i in np.asarray(values).argmax(axis=1).tolist()]

    def compared_values(self, card: ModelCard, values: np.ndarray) -> list[str]:
        return self.predicted_labels(card, values)

    def comparer(self, labels: T, values: T) -> T:
        return labels

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
