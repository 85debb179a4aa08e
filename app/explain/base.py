"""What every explanation shares: the explained class, completeness, the deadline hook."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from app.kinds.base import DEFAULT_PROBABILITY_FLOOR, bound_probabilities
from app.schemas.card import ModelCard

# Completeness bound (issue 16): |sum(attributions) - (f(x) - f(baseline))| must be within
# 2% of |f(x) - f(baseline)|, or within this absolute amount when that difference is small.
RELATIVE_TOLERANCE = 0.02
ABSOLUTE_TOLERANCE = 0.01

Predict = Callable[[np.ndarray], np.ndarray]  # a runtime's: (N, C) probabilities
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
    probabilities = [float(p) for p in probabilities]  # a runtime's row may be an array
    if not card.is_classifier:
        from app.tasks import task_of

        return 0, task_of(card).encode_v1(card, np.array([probabilities]))[0]
    # Served as `:predict` serves them: bounded away from 0 and 1 (the attributions stay on
    # the model's own scale; the bound moves them by less than the completeness tolerance).
    checks = card.out_of_domain
    floor = checks.probability_floor if checks is not None else DEFAULT_PROBABILITY_FLOOR
    probabilities = bound_probabilities(np.array([probabilities]), floor)[0].tolist()
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return best, {
        "label": card.labels[best],
        "probabilities": dict(zip(card.labels, probabilities, strict=True)),
    }


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
