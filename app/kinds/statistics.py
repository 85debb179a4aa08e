"""What each input kind measures of its rows for drift monitoring (`app.monitoring.profile`
builds the reference profile from it and the monitor compares live windows with it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class InputStatistics:
    """The monitoring statistics of one version's rows (the serving rows its kind makes, or
    the training data's rows in the same form), the same at training and serving time."""

    # The statistics' names, in a stable order (the predicted label excluded).
    names: list[str]

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        """Rows -> an (N, len(names)) float64 array of statistics."""
        raise NotImplementedError

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        """The rows in compact form, for the store (one bytes object per row)."""
        raise NotImplementedError

    def measure(self, rows: Sequence[Any]) -> tuple[np.ndarray, list[bytes]]:
        """`compute` and `compact` together (a kind may share the work between them)."""
        return self.compute(rows), self.compact(rows)

    def categories(self, index: int) -> list[str] | None:
        """The categories statistic `index` is counted over (None: it is continuous)."""
        return None
