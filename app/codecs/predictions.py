"""Predictions as the friendly API writes them: one `{"label", "probabilities", "warnings"}`
object per row. Shared by the V1 protocol and the payload log, which records what the
friendly API would have answered whatever the protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.adapters.base import NO_WARNINGS, RowWarnings


def encode_predictions(
    labels: Sequence[str],
    probabilities: np.ndarray,
    warnings: Sequence[RowWarnings] | None = None,
) -> list[dict[str, Any]]:
    """`(N, C)` probabilities -> one `{"label", "probabilities", "warnings"}` per row (the
    first most probable class on a tie, as NumPy's argmax); `warnings` per row, as the
    adapter found them (None or missing rows: none)."""
    # Plain Python over a few classes: on the event loop, 4x cheaper than NumPy's calls.
    rows = probabilities.tolist()
    if not warnings or len(warnings) != len(rows):
        warnings = [NO_WARNINGS] * len(rows)
    return [
        {
            "label": labels[max(range(len(row)), key=row.__getitem__)],
            "probabilities": dict(zip(labels, row, strict=True)),
            "warnings": [{"code": w.code, "message": w.message} for w in row_warnings],
        }
        for row, row_warnings in zip(rows, warnings, strict=True)
    ]
