"""What the core tells its listeners: each completed inference (monitoring, payload log) and
each shadow copy (promotion's comparison). Plain data, no behaviour."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.kinds.base import RowWarnings

if TYPE_CHECKING:
    from app.repository import CardedVersion


@dataclass(frozen=True, slots=True)
class PredictionEvent:
    """One completed inference, for listeners (monitoring, payload logging)."""

    request_id: str
    model: str
    version: int
    labels: Sequence[str]
    rows: Sequence[Any]  # as the version's adapter made them (before featurisation)
    probabilities: np.ndarray  # (N, C) float64, columns in the order of `labels`
    endpoint: str | None
    protocol: str | None
    # A fingerprint of the caller's API key ("" without keys): who may give its feedback.
    caller: str = ""
    # Per row: its input warnings (empty when none; see InputAdapter.warnings).
    warnings: Sequence[RowWarnings] = ()
    # The version that answered (its card and folder), so a listener need not look it up.
    entry: CardedVersion | None = None


PredictionListener = Callable[[PredictionEvent], None]


@dataclass(frozen=True, slots=True)
class ShadowEvent:
    """One request's copy answered (or dropped) by a shadow version, next to the primary's
    answer: for the comparison of the two (`app.monitoring.promotion`)."""

    request_id: str
    model: str
    primary_version: int
    shadow_version: int
    primary_labels: Sequence[str]
    shadow_labels: Sequence[str | None]  # None: the shadow failed on the row
    latency_s: float | None  # the shadow's time for the copy; None when it failed


ShadowListener = Callable[[ShadowEvent], None]
