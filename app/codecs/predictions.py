"""Predictions as the friendly API writes them: each prediction object (the task's encoding)
with its row's `warnings`. Shared by the V1 protocol and the payload log, which records what
the friendly API would have answered whatever the protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.codecs.warnings import RowWarnings


def with_warnings(
    predictions: list[dict[str, Any]], warnings: Sequence[RowWarnings] | None
) -> list[dict[str, Any]]:
    """Each prediction object with its row's `warnings` (a list of `{code, message}`; empty
    when the input looks like the training data), whatever the task."""
    if not warnings or len(warnings) != len(predictions):
        for prediction in predictions:
            prediction["warnings"] = []
        return predictions
    for prediction, found in zip(predictions, warnings, strict=True):
        prediction["warnings"] = [{"code": w.code, "message": w.message} for w in found]
    return predictions
