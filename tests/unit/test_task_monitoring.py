"""What monitoring asks a task plug-in: the label a row is counted and stored under, and how a
feedback truth is checked and stored (app.tasks)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from app.errors import InvalidInput
from app.tasks import CLASSIFICATION, REGRESSION

CLASSES: Any = SimpleNamespace(labels=["cat", "dog", "eel"])
TARGETS: Any = SimpleNamespace(labels=["low", "high"])
TARGET: Any = SimpleNamespace(labels=["price"])


def test_a_classifier_s_rows_are_counted_under_their_most_probable_label() -> None:
    values = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [0.0, 0.1, 0.9]])
    assert CLASSIFICATION.predicted_labels(CLASSES, values) == ["dog", "cat", "eel"]


def test_a_regressor_s_rows_have_no_label() -> None:
    # The first target's name would be a label the model never predicted.
    values = np.array([[3.0, 9.0], [8.0, 1.0]])
    assert REGRESSION.predicted_labels(TARGETS, values) == ["", ""]


@pytest.mark.parametrize(
    ("card", "truth", "stored"),
    [
        (CLASSES, "dog", "dog"),
        (TARGET, 2.5, "[2.5]"),
        (TARGET, [2], "[2.0]"),
        (TARGETS, [1, 2.5], "[1.0, 2.5]"),
    ],
)
def test_feedback_truths_as_stored(card: Any, truth: object, stored: str) -> None:
    task = CLASSIFICATION if card is CLASSES else REGRESSION
    assert task.feedback_value(card, truth, 0, "m", 1) == stored
    if task is REGRESSION:
        assert json.loads(stored) == [float(v) for v in np.atleast_1d(truth)]  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("card", "truth", "message"),
    [
        (CLASSES, "fox", "labels[3]: 'fox' is not a label of model m version 2"),
        (CLASSES, 1, "labels[3]: 1 is not a label"),
        (TARGET, "2.5", "labels[3]: model m is a regressor: send its true value, a number"),
        (TARGET, None, "a number (or null)"),
        (TARGETS, [1.0], "a list of 2 numbers"),
        (TARGETS, [1.0, "x"], "a list of 2 numbers"),
        (TARGET, {"price": 1}, "a number"),
    ],
)
def test_feedback_that_is_no_truth_of_the_task_is_refused(
    card: Any, truth: object, message: str
) -> None:
    task = CLASSIFICATION if card is CLASSES else REGRESSION
    with pytest.raises(InvalidInput, match=re.escape(message)):
        task.feedback_value(card, truth, 3, "m", 2)
