"""What every explanation shares: the explained class, completeness, the deadline hook."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from app.errors import ServingError
from app.schemas.card import ModelCard
from app.tasks import task_of

# Completeness bound (issue 16): |sum(attributions) - (f(x) - f(baseline))| must be within
# 2% of |f(x) - f(baseline)|, or within this absolute amount when that difference is small.
RELATIVE_TOLERANCE = 0.02
ABSOLUTE_TOLERANCE = 0.01

Predict = Callable[[np.ndarray], np.ndarray]  # a runtime's: (N, C) probabilities


class NotExplainable(ServingError):
    """This model cannot be explained on this server (its runtime or backend has no input
    gradients)."""

    status_code = 501


Check = Callable[[], None]


def tolerance(difference: float) -> float:
    """The largest completeness error allowed for f(x) - f(baseline) = `difference`."""
    return max(RELATIVE_TOLERANCE * abs(difference), ABSOLUTE_TOLERANCE)


def completeness(attributions: np.ndarray, f_x: float, f_baseline: float) -> dict[str, float]:
    """How well the attributions add up to f(x) - f(baseline), for the response."""
    total = float(np.sum(attributions, dtype=np.float64))
    difference = f_x - f_baseline
    return {
        "sum_of_attributions": total,
        "prediction_minus_baseline": difference,
        "error": abs(total - difference),
        "tolerance": tolerance(difference),
    }


def prediction(card: ModelCard, probabilities: list[float]) -> tuple[int, dict[str, Any]]:
    """(index of the predicted class, {"label", "probabilities"}) as `:predict` gives them;
    a regressor: (0, the first target explained, its `value`/`values` as `:predict`)."""
    return task_of(card).explained_prediction(card, [float(p) for p in probabilities])


class Explainer(ABC):
    """Explains rows (as the model's adapter makes them) of one loaded model version.

    Runs on the explanation worker thread, never on the event loop; `check()` raises when the
    request's deadline has passed, and long methods call it between chunks of work.
    """

    def __init__(self, card: ModelCard) -> None:
        self.card = card

    @abstractmethod
    def explain(self, row: Any, check: Check) -> dict[str, Any]:
        """One row -> the prediction plus its explanation (a JSON-ready dict)."""
