"""The regression task: predicted target values out, in the target's units, MAE/RMSE/R²
as its metrics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.errors import InvalidInput
from app.schemas.card import CardExample, ModelCard
from app.tasks.base import LiveFigures, OutputTensor, T, Task


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

    def compared_values(self, card: ModelCard, values: np.ndarray) -> list[str]:
        # The first target (as explanations explain it); repr keeps every digit of a float.
        return [repr(float(v)) for v in np.asarray(values)[:, 0].tolist()]

    def comparer(self, labels: T, values: T) -> T:
        return values

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
