"""The protocol-neutral core: pick a model version, run rows through it, get probabilities.

Every protocol (the friendly V1 API, V2 over REST and gRPC) is a peer over these calls, and
each verb (predict, explain) goes decode -> core -> encode:

- `select(name, version)` -> the model version that serves a request (404 unknown, 503 not
  ready or shutting down). One function, so a version (and later a label or a traffic split)
  means the same on every protocol; every decision about a model's inputs is then made by
  that version's input kind (`version.kind`). The version is a frozen `ServedVersion`: card,
  kind, runtime and batcher, all loaded.
- `admit(version, rows, context)`: admission control before a large body is decoded.
- `infer(version, rows)` -> an `(N, C)` float64 array of class probabilities (columns in the
  order of `version.card.labels`), rows already made by the version's kind, through the
  version's batcher, within the request's deadline.
- `explain(version, rows)` -> one explanation per row, on the explanation worker (its own
  queue, fair shares, instance limit and deadline: `app.explain.service`).
- `check_value_count(version, values)`: refuse a body with more values than a valid request.
- `subscribe(listener)`: called on the event loop after every completed inference with a
  `PredictionEvent` (request id, model, version, rows, probabilities) -- a monitoring store
  or a payload log hangs here, not inside a protocol.
- `off_loop(job)`: decoding work (images, large bodies) on the bounded decoding pool, with the
  request's deadline and client disconnects.

The core knows no HTTP and no JSON, and imports no web framework (import-linter's
`core-no-web`): protocols decode requests into rows and encode the answers back. Its errors
carry a status and a message of no protocol; an error about one row carries the row's index
(`exc.instance`) and each protocol names the row its own way. Model loading belongs to the
repository (`app.repository`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from app.batch_function import batch_function
from app.batching import Batcher
from app.budget import RequestBudget
from app.context import RequestContext
from app.decoding import DecodingPool, Receive
from app.errors import (
    DeadlineExceeded,
    MalformedVersion,
    PayloadTooLarge,
    ServingError,
    Unavailable,
)
from app.events import PredictionEvent, PredictionListener, ShadowEvent, ShadowListener
from app.explain.service import ExplanationService
from app.metrics import Metrics
from app.repository import CardedVersion, ModelRegistry, ServedVersion
from app.runtimes.base import Model
from app.schemas.versions import not_a_version, parse_version
from app.settings import BatchingSettings, ExplainSettings, LimitsSettings, ServingSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
# Shadow copies in flight at once, over every model: beyond it copies are dropped (counted),
# so a slow shadow cannot pile up tasks and memory.
MAX_SHADOW_REQUESTS = 256
# Values beyond those of the largest valid request that a body may hold (the keys and
# metadata of a JSON body are counted with its values).
VALUE_COUNT_SLACK = 256


class InferenceCore:
    """Model selection and inference, shared by every protocol."""

    def __init__(
        self,
        registry: ModelRegistry,
        metrics: Metrics,
        *,
        serving: ServingSettings,
        limits: LimitsSettings,
        batching: BatchingSettings,
        explain: ExplainSettings,
    ) -> None:
        # Only the groups it reads; the protocols read `limits` and `batching` through it.
        self.serving = serving
        self.limits = limits
        self.batching = batching
        self.registry = registry
        self.metrics = metrics
        self.draining = False
        self.drain_started = math.inf
        self._listeners: list[PredictionListener] = []
        self._shadow_listeners: list[ShadowListener] = []
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        # The explanation verb: its explainers and its own worker (started on first use).
        self.explanations = ExplanationService(explain, registry, metrics.registry)
        self._decoding = DecodingPool(
            serving.resolved_decode_threads(), limits.max_request_image_pixels
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
        the request arrived after shutdown began), MalformedVersion (400: a
        malformed version header).
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

    # ------------------------------------------------------------------ admission
    def check_value_count(self, version: CardedVersion, values: int) -> None:
        """PayloadTooLarge (413) before parsing when a body holds more values than the largest
        valid request can (counted by the protocol, e.g. a JSON body's commas: a few
        milliseconds for 8 MB, where parsing would take a few hundred), so a body of a million
        zeros costs nothing to refuse."""
        max_instances = self.limits.max_instances
        limit = version.kind.max_values(max_instances)
        if limit is not None and values > limit + VALUE_COUNT_SLACK:
            raise PayloadTooLarge(
                f"the body holds {values} values or more, more than "
                f"{max_instances} instances of model {version.name} can have "
                f"({limit}); send at most {max_instances} instances per request"
            )

    def admit(self, version: ServedVersion, rows: int, context: RequestContext) -> None:
        """Admission control before decoding a request of about `rows` rows: raises
        Unavailable (503) at once when the version's queue could not take them within the
        request's deadline, so a large body is not decoded only to be refused."""
        version.batcher.admit(rows, self.remaining_s(context))

    # ------------------------------------------------------------------ inference
    async def infer(
        self,
        entry: ServedVersion,
        rows: Sequence[Any],
        context: RequestContext,
    ) -> np.ndarray:
        """Probabilities `(N, C)` for `rows` (made by `entry.kind`), in order.

        The deadline (SYNERGY_REQUEST_TIMEOUT_MS) runs from when the request arrived, so time
        spent reading and decoding the body counts. An error about one row (an input the
        model cannot compute) carries the row's index in `exc.instance`, and the protocol
        names the row its own way (`instances[3]`, `input features[3]`). Raises Unavailable
        (overloaded, stopping), DeadlineExceeded, ModelFailed, InvalidInput.
        """
        context.rows = len(rows)
        remaining_s = self.remaining_s(context)
        if remaining_s <= 0:
            raise self.deadline_exceeded()
        results = await entry.batcher.predict(rows, remaining_s)
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

    # ------------------------------------------------------------------ explanation
    async def explain(
        self, entry: ServedVersion, rows: list[Any], context: RequestContext
    ) -> list[Any]:
        """One explanation per row of `rows` (made by `entry.kind`), in order: the verb
        next to `infer`, on the explanation worker with its own queue, instance limit and
        deadline (`app.explain.service`). Errors as `ExplanationService.explain`."""
        return await self.explanations.explain(entry, rows, context)

    def explain_refused(self, entry: CardedVersion, exc: ServingError) -> None:
        """Count an explanation request refused while the protocol decoded it."""
        self.explanations.refused(entry, exc)

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
                self.serving.request_timeout_ms / 1000.0,
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
        batching = self.batching.for_model(entry.name)
        version = str(entry.version)
        run_batch = batch_function(
            entry,
            model,
            self.metrics,
            lambda: batcher.own_rows,  # shadow copies aside
        )
        batcher = Batcher(
            f"{entry.name}/{entry.version}",
            run_batch,
            max_batch_size=batching.max_batch_size,
            max_batch_wait_ms=batching.max_batch_wait_ms,
            max_queue_rows=batching.max_queue_rows,
            max_queue_wait_ms=batching.max_queue_wait_ms,
            observer=self.metrics.batch_observer(entry.name, entry.version, entry.stats),
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
        remaining = self.serving.request_timeout_ms / 1000.0 - (now - context.arrived)
        if context.client_deadline is not None:
            return min(remaining, context.client_deadline - now)
        return remaining

    def deadline_exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            "the request took longer than its deadline "
            f"({self.serving.request_timeout_ms:g} ms);"
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
        return await self._decoding.run(job, remaining_s, receive, self.deadline_exceeded)

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
        self._decoding.shutdown()
        self.explanations.stop()  # after its current job


def _pinned_version(text: str) -> int:
    """The X-Model-Version header -> a version number (MalformedVersion otherwise)."""
    version = parse_version(text)
    if version is None:
        raise MalformedVersion(f"the X-Model-Version header: {not_a_version(text)}")
    return version
