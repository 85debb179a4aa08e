"""The function a loaded version's batcher runs on its worker thread, one call per batch.

Featurise the rows with the version's input kind, run the runtime's forward pass, bound the
outputs as the task says, attach the kind's input warnings, turn a row the model cannot
compute (NaN or infinity) into that row's own 422, and count the predictions. Everything
decided per version (the task, its probability floor, the metric series) is decided once, when
the batcher starts, not per batch or per request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from app.errors import ServingError
from app.kinds.base import NO_WARNINGS, RowWarnings, bound_probabilities
from app.metrics import Metrics
from app.repository import CardedVersion
from app.runtimes.base import Model

BatchResults = list[tuple[np.ndarray, RowWarnings] | ServingError]


def batch_function(
    entry: CardedVersion,
    model: Model,
    metrics: Metrics,
    own_rows: Callable[[], Sequence[bool] | None],
) -> Callable[[list[Any]], BatchResults]:
    """The batch function for `entry` served by `model` (in two stages, `StagedBatch`, for a
    model that computes asynchronously; else called whole): per row, `(outputs (C,) float64,
    warnings)` or the row's own ServingError, in the order of `rows`. `own_rows()` says, for
    the batch being started, which rows are this version's own requests (None: all of
    them); shadow copies are answered but not counted as this version's predictions."""
    adapter, card, stats, task = entry.kind, entry.card, entry.stats, entry.task
    version = str(entry.version)
    prediction_counter = metrics.predictions

    # Decided once per version: whether (and to what floor) its outputs are bounded.
    task_floor = task.probability_floor(card)
    bounded = task_floor is not None
    floor = task_floor or 0.0
    warning_counter = metrics.input_warnings

    def start(rows: list[Any]) -> Callable[[], BatchResults]:
        # Rows the adapter refuses here (it checks per batch what would cost a pass over
        # each request on the event loop) fail their own request only.
        features, refused = adapter.featurize_batch(rows)
        outputs = model.start_embedded(features)
        own = own_rows()  # for this batch: the batcher may start the next one before finish
        return lambda: finish(rows, features, refused, outputs, own)

    def finish(
        rows: list[Any],
        features: Any,
        refused: dict[int, ServingError],
        outputs: Callable[[], tuple[np.ndarray, np.ndarray | None]],
        own: Sequence[bool] | None,
    ) -> BatchResults:
        raw, embedded = outputs()
        probabilities = bound_probabilities(raw, floor) if bounded else raw
        warned = adapter.warnings(rows, features, embedded)
        results: BatchResults = (
            [(row, NO_WARNINGS) for row in probabilities]
            if warned is None
            else list(zip(probabilities, warned, strict=True))
        )
        if warned is not None:
            codes = Counter(w.code for row_warnings in warned for w in row_warnings)
            for code, count in codes.items():
                warning_counter.labels(entry.name, version, code).inc(count)
            stats.record_warnings(codes, sum(1 for row_warnings in warned if row_warnings))
        finite = np.isfinite(probabilities).all(axis=1)
        if refused:
            for index, error in refused.items():
                results[index] = error
            finite[list(refused)] = False  # neither an answer nor a counted prediction
        if not finite.all():
            # NaN/infinity out of a model that is fine on other rows: this input is
            # outside what its float32 arithmetic can compute. A client error for this
            # row's request only; the batch's other requests get their answers.
            for index in np.flatnonzero(~finite).tolist():
                if index not in refused:
                    results[index] = adapter.uncomputable(rows[index])
        # Shadow copies are not this version's predictions.
        counted = finite if own is None else finite & np.asarray(own, dtype=bool)
        tally = Counter(task.predicted_labels(card, probabilities[counted]))
        for label, count in tally.items():
            prediction_counter.labels(entry.name, version, label).inc(count)
        stats.record_labels(tally)
        return results

    if model.computes_asynchronously:
        return StagedBatch(start)

    def run_batch(rows: list[Any]) -> BatchResults:
        # A model that computes in `start`: nothing to overlap, so no early start (which
        # would only hold this batch's answers back while the next one computes).
        return start(rows)()

    return run_batch


class StagedBatch:
    """A batch function in the batcher's two stages (`app.batching.BatchStart`): `start(rows)`
    featurises and starts the forward pass, the function it returns finishes the batch.
    Called whole, it does both."""

    def __init__(self, start: Callable[[list[Any]], Callable[[], BatchResults]]) -> None:
        self.start = start

    def __call__(self, rows: list[Any]) -> BatchResults:
        return self.start(rows)()
