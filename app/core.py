"""The protocol-neutral core: pick a model version, run rows through it, get probabilities.

Every protocol (the friendly V1 API, V2, later gRPC, explanations) is a peer over these calls:

- `select(name, version)` -> the model version that serves a request (404 unknown, 503 not
  ready or shutting down). One function, so a version (and later a label or a traffic split)
  means the same on every protocol; every decision about a model's inputs is then made by
  that version's input kind (`version.kind`). The version is a frozen `ServedVersion`: card,
  kind, runtime and batcher, all loaded.
- `admit(version, rows, context)`: admission control before a large body is decoded.
- `infer(version, rows)` -> an `(N, C)` float64 array of class probabilities (columns in the
  order of `version.card.labels`), rows already made by the version's kind, through the
  version's batcher, within the request's deadline.
- `subscribe(listener)`: called on the event loop after every completed inference with a
  `PredictionEvent` (request id, model, version, rows, probabilities) -- a monitoring store
  or a payload log hangs here, not inside a protocol.
- `off_loop(job)`: decoding work (images, large bodies) on the bounded decoding pool, with the
  request's deadline and client disconnects.

The core knows no HTTP and no JSON: protocols decode requests into rows and encode the
probabilities back. Model loading belongs to the repository (`app.repository`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from starlette.types import Receive

from app.adapters.base import (
    DEFAULT_PROBABILITY_FLOOR,
    NO_WARNINGS,
    RowWarnings,
    bound_probabilities,
)
from app.batching import Batcher
from app.budget import ClientDisconnected, RequestBudget, release_free_memory
from app.context import RequestContext
from app.errors import BadRequest, DeadlineExceeded, ServingError, Unavailable
from app.metrics import Metrics
from app.repository import CardedVersion, ModelRegistry, ServedVersion
from app.runtimes.base import Model
from app.schemas.versions import not_a_version, parse_version
from app.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
# After a request decoded this many pixels, hand the freed memory back to the OS (glibc keeps
# it in per-thread arenas otherwise: six 25 MP decodes left the process 2 GB larger).
TRIM_AFTER_PIXELS = 1_000_000
# Shadow copies in flight at once, over every model: beyond it copies are dropped (counted),
# so a slow shadow cannot pile up tasks and memory.
MAX_SHADOW_REQUESTS = 256


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


class InferenceCore:
    """Model selection and inference, shared by every protocol."""

    def __init__(self, settings: Settings, registry: ModelRegistry, metrics: Metrics) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.draining = False
        self.drain_started = math.inf
        self._listeners: list[PredictionListener] = []
        self._shadow_listeners: list[ShadowListener] = []
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._decoder = ThreadPoolExecutor(
            settings.serving.resolved_decode_threads(), thread_name_prefix="decode"
        )

    # ------------------------------------------------------------------ selection
    def select(
        self,
        name: str,
        version: int | None = None,
        context: RequestContext | None = None,
        label: str | None = None,
    ) -> ServedVersion:
        """The model version that serves a request.

        In order: the path's `version`, the path's `label`, the request's X-Model-Version or
        X-Model-Label header, else the model's router (its traffic split by the
        X-Routing-Key header, or the newest ready version). Only routed requests (none of the
        above named a version) are copied to the model's shadow.

        Raises NotFound (unknown model, version or label), Unavailable (loading, failed, or
        the request arrived after shutdown began), BadRequest (400: a malformed version header).
        Records the version and its route label on `context`, which leases it until the
        request ends.
        """
        arrived = context.arrived if context is not None else math.inf
        if self.draining and arrived >= self.drain_started:
            raise Unavailable(
                "the server is shutting down; retry on another replica", close_connection=True
            )
        registry = self.registry
        route = ""
        shadow = None
        if version is None and label is None and context is not None:
            if context.pin_version is not None:
                version = _pinned_version(context.pin_version)
            elif context.pin_label is not None:
                label = context.pin_label
        if version is not None:
            entry = registry.get_ready(name, version)
        elif label is not None:
            entry = registry.check_ready(registry.by_label(name, label))
            route = label
        else:
            entry, route = registry.route(name, context.routing_key if context else None)
            model = registry.models[name]
            shadow = model.router.shadow
            if shadow is entry:
                shadow = None
        if context is not None:
            context.serve(entry, route)
            context.shadow = shadow
        return entry

    # ------------------------------------------------------------------ inference
    def admit(self, version: ServedVersion, rows: int, context: RequestContext) -> None:
        """Admission control before decoding a request of about `rows` rows: raises
        Unavailable (503) at once when the version's queue could not take them within the
        request's deadline, so a large body is not decoded only to be refused."""
        version.batcher.admit(rows, self.remaining_s(context))

    async def infer(
        self,
        entry: ServedVersion,
        rows: Sequence[Any],
        context: RequestContext,
        where: str = "instances[{}]",
    ) -> np.ndarray:
        """Probabilities `(N, C)` for `rows` (made by `entry.kind`), in order.

        The deadline (SYNERGY_REQUEST_TIMEOUT_MS) runs from when the request arrived, so time
        spent reading and decoding the body counts. An error about one row (an input the
        model cannot compute) names it with `where` (the protocol's way to point at an
        instance). Raises Unavailable (overloaded, stopping), DeadlineExceeded, ModelFailed,
        InvalidInput.
        """
        context.rows = len(rows)
        remaining_s = self.remaining_s(context)
        if remaining_s <= 0:
            raise self.deadline_exceeded()
        try:
            results = await entry.batcher.predict(rows, remaining_s)
        except ServingError as exc:
            if exc.instance is not None:
                exc.message = f"{where.format(exc.instance)}: {exc.message}"
            raise
        # One row (the common request): a view, not a copy.
        probabilities = (
            results[0][0][None, :] if len(results) == 1 else np.stack([r[0] for r in results])
        )
        context.warnings = [r[1] for r in results]
        if context.shadow is not None:
            self._copy_to_shadow(context.shadow, entry, rows, probabilities, context.request_id)
        if self._listeners:
            event = PredictionEvent(
                context.request_id,
                entry.name,
                entry.version,
                entry.card.labels,
                rows,
                probabilities,
                context.endpoint,
                context.protocol,
                context.caller,
                context.warnings,
            )
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:  # a listener's failure never fails the prediction
                    log.exception("prediction listener %r failed", listener)
        return probabilities

    def _copy_to_shadow(
        self,
        shadow: ServedVersion,
        primary: ServedVersion,
        rows: Sequence[Any],
        answer: np.ndarray,
        request_id: str = "",
    ) -> None:
        """Predict `rows` on the shadow version in the background; count its disagreements
        with the primary's `answer`. Never waits and never fails the primary request: when
        the shadow's queue is full (its own admission control) or it fails, the copy is
        dropped and counted."""
        labels = (shadow.name, str(shadow.version))
        if len(self._shadow_tasks) >= MAX_SHADOW_REQUESTS:
            self.metrics.shadow_dropped.labels(*labels).inc(len(rows))
            return
        shadow.acquire()
        task = asyncio.get_running_loop().create_task(
            self._shadow(shadow, primary, list(rows), np.argmax(answer, axis=1), request_id)
        )
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self,
        shadow: ServedVersion,
        primary: ServedVersion,
        rows: list[Any],
        primary_best: np.ndarray,
        request_id: str = "",
    ) -> None:
        labels = (shadow.name, str(shadow.version))
        shadow_labels: list[str | None] = [None] * len(rows)
        latency_s: float | None = None
        started = time.perf_counter()
        try:
            results = await shadow.batcher.predict(
                shadow.kind.rows_from(rows),
                self.settings.serving.request_timeout_ms / 1000.0,
                shadow=True,
            )
            shadow_labels = [
                shadow.card.labels[int(np.argmax(r[0]))] if isinstance(r, tuple) else None
                for r in results
            ]
            primary_labels = [primary.card.labels[i] for i in primary_best.tolist()]
            differ = sum(a != b for a, b in zip(shadow_labels, primary_labels, strict=True))
            latency_s = time.perf_counter() - started
            self.metrics.shadow_rows.labels(*labels).inc(len(rows))
            self.metrics.shadow_disagreements.labels(*labels).inc(differ)
        except Exception as exc:  # noqa: BLE001 - a shadow's failure is counted, never raised
            log.debug("shadow %s/%s dropped a copy: %s", *labels, exc)
            self.metrics.shadow_dropped.labels(*labels).inc(len(rows))
        finally:
            shadow.release()
        if self._shadow_listeners:
            event = ShadowEvent(
                request_id,
                shadow.name,
                primary.version,
                shadow.version,
                [primary.card.labels[i] for i in primary_best.tolist()],
                shadow_labels,
                latency_s,
            )
            for listener in self._shadow_listeners:
                try:
                    listener(event)
                except Exception:  # a listener's failure never affects serving
                    log.exception("shadow listener %r failed", listener)

    def subscribe(self, listener: PredictionListener) -> None:
        """Call `listener(event)` on the event loop after each completed inference; it must
        be quick (hand slow work to a queue of its own)."""
        self._listeners.append(listener)

    def subscribe_shadow(self, listener: ShadowListener) -> None:
        """Call `listener(event)` on the event loop after each shadow copy (answered or
        failed); it must be quick. Runs in the shadow's task, never the primary request's."""
        self._shadow_listeners.append(listener)

    def serve(self, entry: CardedVersion, model: Model) -> Batcher:
        """Start the batcher of a loaded version: `model` (its runtime) behind it, the
        version's kind (loaded) featurising, its stats fed per batch."""
        batching = self.settings.batching.for_model(entry.name)
        adapter, card, stats, task = entry.kind, entry.card, entry.stats, entry.task
        version = str(entry.version)
        prediction_counter = self.metrics.predictions

        checks = entry.card.out_of_domain
        floor = checks.probability_floor if checks is not None else DEFAULT_PROBABILITY_FLOOR
        # A regressor's outputs are target values, not probabilities: never bounded.
        bounded = entry.card.is_classifier
        warning_counter = self.metrics.input_warnings

        def run_batch(rows: list[Any]) -> list[tuple[np.ndarray, RowWarnings] | ServingError]:
            # Rows the adapter refuses here (it checks per batch what would cost a pass over
            # each request on the event loop) fail their own request only.
            features, refused = adapter.featurize_batch(rows)
            raw, embedded = model.predict_embedded(features)
            probabilities = bound_probabilities(raw, floor) if bounded else raw
            warned = adapter.warnings(rows, features, embedded)
            results: list[tuple[np.ndarray, RowWarnings] | ServingError] = (
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
            own = batcher.own_rows  # shadow copies are not this version's predictions
            counted = finite if own is None else finite & np.asarray(own, dtype=bool)
            tally = Counter(task.predicted_labels(card, probabilities[counted]))
            for label, count in tally.items():
                prediction_counter.labels(entry.name, version, label).inc(count)
            stats.record_labels(tally)
            return results

        batcher = Batcher(
            f"{entry.name}/{entry.version}",
            run_batch,
            max_batch_size=batching.max_batch_size,
            max_batch_wait_ms=batching.max_batch_wait_ms,
            max_queue_rows=batching.max_queue_rows,
            max_queue_wait_ms=batching.max_queue_wait_ms,
            observer=self.metrics.batch_observer(entry.name, entry.version, stats),
        )
        self.metrics.queue_rows.labels(entry.name, version).set_function(
            lambda: batcher.queued_rows
        )
        batcher.start()
        return batcher

    # ------------------------------------------------------------------ deadlines, decoding
    def remaining_s(self, context: RequestContext) -> float:
        """Seconds left of this request's deadline (counted from its arrival), or of the
        client's own deadline when that comes first (a gRPC call's)."""
        now = time.perf_counter()
        remaining = self.settings.serving.request_timeout_ms / 1000.0 - (now - context.arrived)
        if context.client_deadline is not None:
            return min(remaining, context.client_deadline - now)
        return remaining

    def deadline_exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            "the request took longer than its deadline "
            f"({self.settings.serving.request_timeout_ms:g} ms);"
            " send fewer or smaller instances, or retry later"
        )

    async def off_loop(
        self,
        job: Callable[[RequestBudget], T],
        context: RequestContext,
        receive: Receive | None = None,
    ) -> T:
        """Run `job(budget)` on a decoding thread, within the request's deadline.

        The decoding threads are a bounded pool (SYNERGY_DECODE_THREADS), so concurrent
        uploads queue instead of decoding all at once (memory). The job gets the request's
        budget (deadline, decoded pixels) and checks it between steps. When the deadline
        passes (504) or the client disconnects (`receive` says so; 499 in the logs), this
        returns at once and the job stops at its next check.
        """
        remaining_s = self.remaining_s(context)
        if remaining_s <= 0:
            raise self.deadline_exceeded()
        budget = RequestBudget(
            time.perf_counter() + remaining_s, self.settings.limits.max_request_image_pixels
        )
        work = asyncio.get_running_loop().run_in_executor(self._decoder, _run_job, job, budget)
        work.add_done_callback(_consume)
        watcher = asyncio.ensure_future(_disconnect(receive)) if receive is not None else None
        try:
            waiting: set[asyncio.Future[Any]] = {work} if watcher is None else {work, watcher}
            done, _ = await asyncio.wait(
                waiting, timeout=remaining_s, return_when=asyncio.FIRST_COMPLETED
            )
            if work in done:
                return work.result()
            reason: ServingError = (
                ClientDisconnected("the client disconnected before the answer")
                if watcher is not None and watcher in done
                else self.deadline_exceeded()
            )
            budget.stop(reason)
            raise reason
        except asyncio.CancelledError:
            budget.stop(ClientDisconnected("the request was cancelled"))
            raise
        finally:
            if watcher is not None:
                watcher.cancel()

    # ------------------------------------------------------------------ shutdown
    def begin_drain(self) -> None:
        """Shutdown phase 1: readiness goes 503 and predictions that arrive from now on are
        refused. Requests already received (even those still uploading their body) finish."""
        if not self.draining:
            self.draining = True
            self.drain_started = time.perf_counter()

    async def stop(self, drain_timeout_s: float) -> None:
        """Shutdown phase 2: finish queued rows (up to the timeout), then stop every worker."""
        self.begin_drain()
        batchers = [e.served.batcher for e in self.registry if e.served is not None]
        await asyncio.gather(*(b.stop(drain_timeout_s) for b in batchers))
        self._decoder.shutdown(wait=False, cancel_futures=True)


def _pinned_version(text: str) -> int:
    """The X-Model-Version header -> a version number (BadRequest otherwise)."""
    version = parse_version(text)
    if version is None:
        raise BadRequest(f"the X-Model-Version header: {not_a_version(text)}")
    return version


def _run_job(job: Callable[[RequestBudget], T], budget: RequestBudget) -> T:
    """A decoding job on its thread; afterwards, large decodes' memory goes back to the OS."""
    try:
        budget.check()  # it may have waited for a thread past its deadline
        return job(budget)
    finally:
        if budget.pixels >= TRIM_AFTER_PIXELS:
            release_free_memory()


def _consume(future: asyncio.Future[Any]) -> None:
    # A job abandoned at its deadline still ends with a result or an error: nobody reads it.
    if not future.cancelled():
        future.exception()


async def _disconnect(receive: Receive) -> None:
    """Returns when the client has closed the connection (the body was read already, so
    the server's next message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass
