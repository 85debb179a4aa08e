"""ExplanationService: a version's rows -> explanations, on the explanation worker.

The `explain` verb behind `InferenceCore.explain`, protocol-neutral: a protocol decodes a
request into rows with the same adapters and parsing as predictions (named features, arrays,
base64 images, uploads, raw text), so an input `:predict` accepts is explained as it is
predicted; the protocol encodes the explanations. This module owns what is particular to the
verb: the explainers (built once per loaded version), the worker with its own queue and fair
shares, the instance limit and the deadline.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry

from app.attributions.base import Explainer
from app.context import RequestContext
from app.errors import PayloadTooLarge, ServingError
from app.explain.worker import Check, ExplainWorker
from app.kinds import InputAdapter
from app.repository import CardedVersion, ModelRegistry, ServedVersion
from app.runtimes import Model
from app.series import ExplainSeries
from app.settings import ExplainSettings


class ExplanationService:
    """Everything between a decoded `:explain` request and the explainers."""

    def __init__(
        self, settings: ExplainSettings, registry: ModelRegistry, metrics: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = ExplainSeries(metrics)
        self.worker = ExplainWorker(
            max_queue=settings.explain_max_queue,
            max_per_caller=settings.explain_max_per_caller,
            niceness=settings.explain_niceness,
            pressure=lambda: any(
                entry.served is not None and entry.served.batcher.in_flight_rows > 0
                for entry in registry
            ),
            max_yield_s=settings.explain_max_yield_ms / 1000.0,
        )
        # (name, version) -> (the runtime it was built for, its explainer); built on first use
        # on the worker thread (the gradient function compiles then).
        self._explainers: dict[tuple[str, int], tuple[Any, Explainer]] = {}
        registry.listeners.append(self._forget_unloaded)
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Shutdown: the worker ends after its current job."""
        self.worker.stop()

    # ------------------------------------------------------------------ requests
    def refused(self, entry: CardedVersion, exc: ServingError) -> None:
        """Count a request for `entry` that failed before or while explaining (by status)."""
        self.metrics.requests.labels(entry.name, str(entry.version), exc.status_code).inc()

    async def explain(
        self, entry: ServedVersion, rows: list[Any], context: RequestContext
    ) -> list[Any]:
        """One explanation per row, in order, computed on the explanation worker.

        Raises PayloadTooLarge (over SYNERGY_EXPLAIN_MAX_INSTANCES rows), Unavailable (the
        worker's queue or the caller's share is full), DeadlineExceeded
        (SYNERGY_EXPLAIN_TIMEOUT_MS from the request's arrival), InvalidInput with
        `exc.instance` (a row the model cannot compute), NotExplainable (501).
        """
        try:
            return await self._explain(entry, rows, context)
        except ServingError as exc:
            self.refused(entry, exc)
            raise

    async def _explain(
        self, entry: ServedVersion, rows: list[Any], context: RequestContext
    ) -> list[Any]:
        limit = self.settings.explain_max_instances
        if len(rows) > limit:
            raise PayloadTooLarge(
                f"too many instances to explain: at most {limit} per request (explaining one "
                "costs hundreds of model calls); split them over several requests"
            )
        context.rows = len(rows)
        deadline = context.arrived + self.settings.explain_timeout_ms / 1000.0
        started: list[float] = []

        def work(check: Check) -> list[Any]:
            started.append(time.perf_counter())
            try:
                return self.explain_rows(entry, rows, check)
            finally:
                self.metrics.duration.labels(entry.name).observe(time.perf_counter() - started[0])

        explanations: list[Any] = await self.worker.run(
            work, deadline, f"{self.settings.explain_timeout_ms:g} ms", _share(context)
        )
        self.metrics.requests.labels(entry.name, str(entry.version), "ok").inc()
        return explanations

    # ------------------------------------------------------------------ worker side
    def explain_rows(self, entry: ServedVersion, rows: list[Any], check: Check) -> list[Any]:
        """Explain every row (on the worker thread); a row the model cannot compute is a 422
        with its index in `exc.instance` (the protocol names it), as in `:predict`."""
        model, adapter = entry.model, entry.kind
        explainer = self.explainer_for(entry)
        features, refused = adapter.featurize_batch(rows)
        if refused:  # as `:predict` refuses it (a review with no known word)
            index = min(refused)
            error = refused[index]
            error.instance = index
            raise error
        probabilities = model.predict(features)
        results = []
        for index, (row, row_probabilities) in enumerate(zip(rows, probabilities, strict=True)):
            if not all(math.isfinite(p) for p in row_probabilities):
                error = adapter.uncomputable(row)
                error.instance = index
                raise error
            check()
            results.append(explainer.explain(row, check))
        return results

    def _forget_unloaded(self) -> None:
        """Drop the explainers of versions that were unloaded (they hold the runtime)."""
        live = {(e.name, e.version): e.served.model for e in self.registry if e.served is not None}
        with self._lock:
            for key, (model, _) in list(self._explainers.items()):
                if live.get(key) is not model:
                    del self._explainers[key]

    def explainer_for(self, entry: ServedVersion) -> Explainer:
        """The explainer of this loaded version (built once, on first use)."""
        key = (entry.name, entry.version)
        with self._lock:
            cached = self._explainers.get(key)
            if cached is not None and cached[0] is entry.model:
                return cached[1]
        explainer = build_explainer(entry, self.settings)
        with self._lock:
            self._explainers[key] = (entry.model, explainer)
        return explainer


def build_explainer(entry: ServedVersion, settings: ExplainSettings) -> Explainer:
    """The explainer for a loaded version's input kind and runtime."""
    return make_explainer(entry.card, entry.model, entry.kind, settings)


def make_explainer(
    card: Any, model: Model, adapter: InputAdapter, settings: ExplainSettings
) -> Explainer:
    """The explainer for (card, loaded runtime, adapter): its input kind's (`app.kinds`)."""
    return adapter.explainer(model, settings)


def _share(context: RequestContext) -> str:
    """Whose share of the explanation worker a request uses: its API key's, else its client
    address's (set by the explain routes)."""
    return context.caller or context.client
