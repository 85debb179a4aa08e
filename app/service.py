"""PredictionService: request body -> validated instances -> batcher -> predictions.

Routes call this and nothing deeper. It owns the model registry, loads every model in the
background at start-up, and drains and stops the batchers at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.types import Receive

from app.batching import Batcher
from app.budget import ClientDisconnected, RequestBudget, release_free_memory
from app.errors import (
    BadRequest,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServingError,
    Unavailable,
)
from app.metrics import Metrics
from app.monitoring import Monitor
from app.preprocessing.adapters import ImageAdapter, InputAdapter, make_adapter
from app.registry import (
    ArtifactMismatch,
    ModelEntry,
    ModelRegistry,
    ModelState,
    load_failure_reason,
    verify,
)
from app.runtimes.base import Model
from app.runtimes.keras import KerasModel, batch_buckets, configure_backend
from app.runtimes.sklearn import SklearnModel
from app.schemas.predict import predict_request_model
from app.settings import Settings

log = logging.getLogger(__name__)

Prediction = dict[str, Any]
T = TypeVar("T")
# Float noise between backends and devices (TF32 on GPUs) stays far below this; a skewed
# preprocessing or a wrong artifact is far above it.
WARMUP_TOLERANCE = 2e-3
YOUNG_GC_THRESHOLD = 20_000
# Bodies over this are parsed on a decoding thread: parsing ~1,000 28x28 images as JSON takes
# milliseconds, too long for the event loop that answers every other request meanwhile.
LARGE_BODY_BYTES = 64 * 1024
# Commas beyond the values of the largest valid request (keys and metadata of the JSON).
VALUE_COUNT_SLACK = 256
# After a request decoded this many pixels, hand the freed memory back to the OS (glibc keeps
# it in per-thread arenas otherwise: six 25 MP decodes left the process 2 GB larger).
TRIM_AFTER_PIXELS = 1_000_000


def _format_location(location: Sequence[int | str]) -> str:
    # ("instances", 0, "array", 3, 5) -> "instances[0][3][5]": the union tag is noise.
    text = ""
    for position, part in enumerate(location):
        if isinstance(part, int):
            text += f"[{part}]"
        elif position == 2 and part in ("array", "object") and location[0] == "instances":
            continue
        else:
            text += f".{part}" if text else part
    return text or "body"


def describe_validation_error(exc: ValidationError, instance_help: str) -> ServingError:
    """Turn pydantic's errors on a request body into one clear client error."""
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "json_invalid":
            return BadRequest(
                f'the body is not valid JSON ({error["msg"]}); send {{"instances": [...]}}'
            )
        if error["type"] == "too_long" and tuple(error["loc"]) == ("instances",):
            return PayloadTooLarge(
                f"too many instances: at most {error['ctx']['max_length']} per request; split "
                "them over several requests"
            )
        if tuple(error["loc"]) == ("instances",) and error["type"] == "too_short":
            return InvalidInput('"instances" is empty: send at least one instance')
        if tuple(error["loc"]) == ("instances",) and error["type"] == "missing":
            return InvalidInput(
                'the body must be a JSON object {"instances": [...]}; "instances" is missing'
            )
        if not error["loc"] and error["type"] == "model_type":
            return InvalidInput('the body must be a JSON object {"instances": [...]}')
    problems = [f"{_format_location(e['loc'])}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidInput("; ".join(problems) + more + f". Each instance: {instance_help}")


def _to_predictions(
    labels: Sequence[str],
    probabilities: list[list[float]],
    rows: Sequence[Any],
    adapter: InputAdapter,
) -> list[Prediction | ServingError]:
    predictions: list[Prediction | ServingError] = []
    for row, row_probabilities in zip(rows, probabilities, strict=True):
        if not all(math.isfinite(p) for p in row_probabilities):
            # NaN/infinity out of a model that is fine on other rows: this input is outside
            # what its float32 arithmetic can compute. A client error for this row's request
            # only; the batch's other requests get their answers.
            predictions.append(adapter.uncomputable(row))
            continue
        best = max(range(len(row_probabilities)), key=row_probabilities.__getitem__)
        predictions.append(
            {
                "label": labels[best],
                "probabilities": dict(zip(labels, row_probabilities, strict=True)),
            }
        )
    return predictions


class PredictionService:
    """Everything between an HTTP route and a model."""

    def __init__(self, settings: Settings, registry: ModelRegistry, metrics: Metrics) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.draining = False
        self.drain_started = math.inf
        self.backend = ""
        self._loader: asyncio.Task[None] | None = None
        # Set by create_app when the monitoring store or payload log is on.
        self.monitor: Monitor | None = None
        self._decoder = ThreadPoolExecutor(
            settings.resolved_decode_threads(), thread_name_prefix="decode"
        )
        self.request_models: dict[str, type[BaseModel]] = {}
        self.instance_help: dict[str, str] = {}
        for entry in registry:
            if entry.card is not None and entry.name not in self.request_models:
                newest = max(v for v, e in registry.versions(entry.name).items() if e.card)
                card = registry.versions(entry.name)[newest].card
                assert card is not None
                self.request_models[entry.name] = predict_request_model(
                    card,
                    max_instances=settings.max_instances,
                    max_text_chars=settings.max_text_chars,
                    examples=[example.instance for example in card.examples],
                )
                self.instance_help[entry.name] = _instance_help(card, settings)
            metrics.model_ready.labels(entry.name, str(entry.version)).set(0)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Begin loading every model in the background; returns at once."""
        self._loader = asyncio.create_task(self._load_all(), name="load-models")

    async def wait_loaded(self) -> None:
        """Wait until every model has finished loading (ready or failed)."""
        if self._loader is not None:
            await asyncio.shield(self._loader)

    def begin_drain(self) -> None:
        """Shutdown phase 1: readiness goes 503 and predictions that arrive from now on are
        refused. Requests already received (even those still uploading their body) finish."""
        if not self.draining:
            self.draining = True
            self.drain_started = time.perf_counter()

    async def stop(self, drain_timeout_s: float) -> None:
        """Shutdown phase 2: finish queued rows (up to the timeout), then stop every worker."""
        self.begin_drain()
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        batchers = [e.batcher for e in self.registry if e.batcher is not None]
        await asyncio.gather(*(b.stop(drain_timeout_s) for b in batchers))
        self._decoder.shutdown(wait=False, cancel_futures=True)
        for entry in self.registry:
            if entry.state is ModelState.READY:
                entry.state = ModelState.STOPPED
            self.metrics.model_ready.labels(entry.name, str(entry.version)).set(0)

    async def _load_all(self) -> None:
        started = time.perf_counter()
        needs_keras = any(e.card and e.card.framework == "keras" for e in self.registry)
        if needs_keras:
            self.backend = await _in_daemon_thread(
                configure_backend, self.settings.resolved_inference_threads()
            )
        for entry in self.registry:
            if entry.state is not ModelState.LOADING:
                continue
            if await _in_daemon_thread(self._load_one, entry) and not self.draining:
                self._start_batcher(entry)
        ready = sum(e.state is ModelState.READY for e in self.registry)
        log.info(
            "loaded %d of %d model versions in %.1fs",
            ready,
            len(self.registry.entries),
            time.perf_counter() - started,
        )
        # The frameworks leave a few hundred thousand long-lived objects; a full collection
        # over them takes ~150 ms, a latency spike every few seconds under load. Freeze them
        # out of the collector's view once, now that start-up allocation is done.
        gc.collect()
        gc.freeze()
        # Each request allocates a few hundred containers (an image is 28 lists); at the default
        # threshold of 700 the young generation is collected about once per request.
        gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])

    def _load_one(self, entry: ModelEntry) -> bool:
        """Verify, load and warm up one version (on a worker thread); False if it failed."""
        card = entry.card
        assert card is not None
        started = time.perf_counter()
        try:
            if not verify(entry):
                return False
            model: Model
            if card.framework == "keras":
                batching = self.settings.batching_for(entry.name)
                model = KerasModel(
                    card, entry.folder, buckets=batch_buckets(batching.max_batch_size)
                )
            else:
                model = SklearnModel(card, entry.folder)
            model.load()
            adapter = make_adapter(
                card, entry.folder, max_image_pixels=self.settings.max_image_pixels
            )
            if self.settings.warmup:
                self._warm_up(model, adapter)
            if self.draining:  # stopped while it loaded: it never served
                return False
        except Exception as exc:
            log.exception("loading %s/%s failed", entry.name, entry.version)
            entry.fail(load_failure_reason(card, exc))
            return False
        entry.model, entry.adapter = model, adapter
        entry.load_seconds = round(time.perf_counter() - started, 3)
        log.info(
            "model %s version %s ready on %s in %.2fs",
            entry.name,
            entry.version,
            model.device,
            entry.load_seconds,
        )
        return True

    def _warm_up(self, model: Model, adapter: InputAdapter) -> None:
        """Compile every batch bucket, then replay the card's examples end to end.

        The examples' recorded probabilities must come back (within float noise): a model
        that loads but predicts differently from training (preprocessing skew, a broken
        backend) is failed here rather than served.
        """
        examples = adapter.card.examples
        # Validated like a request, but not held to the clients' size limits.
        unlimited = predict_request_model(
            adapter.card, max_instances=len(examples), max_text_chars=2**31, examples=[]
        )
        body = {"instances": [example.instance for example in examples]}
        instances = unlimited.model_validate(body).instances  # type: ignore[attr-defined]
        rows = [adapter.to_row(instance) for instance in instances]
        model.warmup(adapter.featurize(rows[:1]))
        predicted = model.predict(adapter.featurize(rows))
        for example, probabilities in zip(examples, predicted, strict=True):
            if example.probabilities is None:
                continue
            drift = max(
                abs(a - b) for a, b in zip(probabilities, example.probabilities, strict=True)
            )
            if drift > WARMUP_TOLERANCE:
                raise ArtifactMismatch(
                    f"the loaded model does not reproduce the probabilities recorded at "
                    f"training time for a card example (off by {drift:.2g}); the artifact or "
                    "the preprocessing differs from what was trained"
                )

    def _start_batcher(self, entry: ModelEntry) -> None:
        assert entry.card is not None and entry.model is not None and entry.adapter is not None
        batching = self.settings.batching_for(entry.name)
        model, adapter, labels = entry.model, entry.adapter, entry.card.labels
        version = str(entry.version)
        prediction_counter = self.metrics.predictions
        stats = entry.stats

        def run_batch(rows: list[Any]) -> list[Prediction | ServingError]:
            predictions = _to_predictions(
                labels, model.predict(adapter.featurize(rows)), rows, adapter
            )
            tally = Counter(p["label"] for p in predictions if isinstance(p, dict))
            for label, count in tally.items():
                prediction_counter.labels(entry.name, version, label).inc(count)
            stats.record_labels(tally)
            return predictions

        batcher = Batcher(
            f"{entry.name}/{entry.version}",
            run_batch,
            max_batch_size=batching.max_batch_size,
            max_batch_wait_ms=batching.max_batch_wait_ms,
            max_queue_rows=batching.max_queue_rows,
            max_queue_wait_ms=batching.max_queue_wait_ms,
            observer=self.metrics.batch_observer(entry.name, entry.version),
        )
        self.metrics.queue_rows.labels(entry.name, version).set_function(
            lambda: batcher.queued_rows
        )
        batcher.start()
        entry.batcher = batcher
        entry.state = ModelState.READY
        self.metrics.model_ready.labels(entry.name, version).set(1)

    # ------------------------------------------------------------------ predictions
    def ready_entry(
        self, name: str, version: int | None, scope_state: dict[str, Any]
    ) -> ModelEntry:
        """The model version that serves this request (404 unknown, 503 not ready, 503 when
        the request arrived after shutdown began)."""
        if self.draining and scope_state.get("arrived", math.inf) >= self.drain_started:
            raise Unavailable(
                "the server is shutting down; retry on another replica", close_connection=True
            )
        return self.registry.get_ready(name, version)

    def parse_instances(self, name: str, body: bytes) -> list[Any]:
        """Validate a `{"instances": [...]}` body against the model's schema."""
        request_model = self.request_models[name]
        try:
            parsed = request_model.model_validate_json(body)
        except ValidationError as exc:
            raise describe_validation_error(exc, self.instance_help[name]) from None
        instances: list[Any] = parsed.instances  # type: ignore[attr-defined]
        return instances

    async def run(
        self,
        entry: ModelEntry,
        rows: Sequence[Any],
        scope_state: dict[str, Any],
        where: str = "instances[{}]",
    ) -> list[Prediction]:
        """Send rows through the model's batcher; predictions come back in order.

        The deadline (SYNERGY_REQUEST_TIMEOUT_MS) runs from when the request arrived, so time
        spent reading and decoding the body counts. An error about one row names it with
        `where` (the protocol's way to point at an instance).
        """
        assert entry.batcher is not None
        remaining_s = self.remaining_s(scope_state)
        if remaining_s <= 0:
            raise self.deadline_exceeded()
        try:
            predictions = await entry.batcher.predict(rows, remaining_s)
        except ServingError as exc:
            if exc.instance is not None:
                exc.message = f"{where.format(exc.instance)}: {exc.message}"
            raise
        # Every protocol and input route passes here: one place records for monitoring.
        if self.monitor is not None:
            self.monitor.record(entry, list(rows), predictions, scope_state)
        return predictions

    def remaining_s(self, scope_state: dict[str, Any]) -> float:
        """Seconds left of this request's deadline (counted from its arrival)."""
        arrived: float = scope_state.get("arrived", time.perf_counter())
        return self.settings.request_timeout_ms / 1000.0 - (time.perf_counter() - arrived)

    def deadline_exceeded(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"the request took longer than its deadline ({self.settings.request_timeout_ms:g} ms);"
            " send fewer or smaller instances, or retry later"
        )

    async def predict_json(
        self,
        name: str,
        version: int | None,
        body: bytes,
        scope_state: dict[str, Any],
        receive: Receive | None = None,
    ) -> dict[str, Any]:
        """The whole `:predict` path for one request body.

        A small body is parsed on the event loop (microseconds); a large one, and images to
        decode, on a decoding thread (see `off_loop`), so the loop stays free for everyone.
        """
        entry = self.ready_entry(name, version, scope_state)
        label_request(scope_state, entry)
        adapter = entry.adapter
        assert adapter is not None
        rows: list[Any] | None
        if len(body) > LARGE_BODY_BYTES:
            per_row = adapter.max_values(1)
            if per_row is not None:
                # Refuse what cannot be served before paying for the parse: too many values,
                # or at least values // per_row rows that the model has no room for now.
                values = await self.off_loop(lambda _: body.count(b",") + 1, scope_state, receive)
                self.check_value_count(entry, values)
                assert entry.batcher is not None
                entry.batcher.admit(max(1, values // per_row), self.remaining_s(scope_state))
            rows = await self.off_loop(
                lambda budget: self.json_rows(entry, body, budget), scope_state, receive
            )
        else:
            rows = adapter.plain_rows(body, self.settings.max_instances)
            if rows is None:
                instances = self.parse_instances(entry.name, body)
                if adapter.slow_rows and any(isinstance(i, BaseModel) for i in instances):
                    rows = await self.off_loop(
                        lambda budget: _rows(adapter, instances, budget), scope_state, receive
                    )
                else:
                    rows = _rows(adapter, instances, None)
        scope_state["rows"] = len(rows)
        predictions = await self.run(entry, rows, scope_state)
        return {"model": entry.name, "version": entry.version, "predictions": predictions}

    def json_rows(self, entry: ModelEntry, body: bytes, budget: RequestBudget) -> list[Any]:
        """A `{"instances": [...]}` body -> rows (on a decoding thread; its values were
        counted already)."""
        adapter = entry.adapter
        assert adapter is not None
        plain = adapter.plain_rows(body, self.settings.max_instances)
        if plain is not None:
            return plain
        return _rows(adapter, self.parse_instances(entry.name, body), budget)

    def check_value_count(self, entry: ModelEntry, values: int) -> None:
        """413 before parsing when a JSON body holds more values than the largest valid
        request can (counted by its commas: a few milliseconds for 8 MB, where parsing would
        take a few hundred), so a body of a million zeros costs nothing to refuse."""
        assert entry.adapter is not None
        limit = entry.adapter.max_values(self.settings.max_instances)
        if limit is not None and values > limit + VALUE_COUNT_SLACK:
            raise PayloadTooLarge(
                f"the body holds {values} values or more, more than "
                f"{self.settings.max_instances} instances of model {entry.name} can have "
                f"({limit}); send at most {self.settings.max_instances} instances per request"
            )

    async def predict_image(
        self,
        name: str,
        version: int | None,
        data: bytes,
        scope_state: dict[str, Any],
        receive: Receive | None = None,
    ) -> dict[str, Any]:
        """One uploaded image file -> one prediction."""
        entry = self.ready_entry(name, version, scope_state)
        label_request(scope_state, entry)
        adapter = entry.adapter
        if not isinstance(adapter, ImageAdapter):
            raise NotFound(
                f"model {name} does not take images, so it has no :predict-image; "
                f"use :predict with {self.instance_help[entry.name]}"
            )
        scope_state["rows"] = 1
        row = await self.off_loop(
            lambda budget: adapter.image_to_row(data, budget), scope_state, receive
        )
        predictions = await self.run(entry, [row], scope_state)
        return {"model": entry.name, "version": entry.version, "predictions": predictions}

    async def off_loop(
        self,
        job: Callable[[RequestBudget], T],
        scope_state: dict[str, Any],
        receive: Receive | None = None,
    ) -> T:
        """Run `job(budget)` on a decoding thread, within the request's deadline.

        The decoding threads are a bounded pool (SYNERGY_DECODE_THREADS), so concurrent
        uploads queue instead of decoding all at once (memory). The job gets the request's
        budget (deadline, decoded pixels) and checks it between steps. When the deadline
        passes (504) or the client disconnects (`receive` says so; 499 in the logs), this
        returns at once and the job stops at its next check.
        """
        remaining_s = self.remaining_s(scope_state)
        if remaining_s <= 0:
            raise self.deadline_exceeded()
        budget = RequestBudget(
            time.perf_counter() + remaining_s, self.settings.max_request_image_pixels
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

    # ------------------------------------------------------------------ read side
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready?, body) for /health/ready."""
        statuses = [entry.status() for entry in self.registry]
        if self.draining:
            return False, {"status": "shutting down", "models": statuses}
        if self.registry.all_ready():
            return True, {"status": "ready", "models": statuses}
        loading = any(e.state is ModelState.LOADING for e in self.registry)
        return False, {"status": "loading" if loading else "not ready", "models": statuses}

    def list_models(self) -> dict[str, Any]:
        """Every model, its versions and their state."""
        summaries = []
        for name in self.registry.names:
            versions = self.registry.versions(name)
            newest = self.registry.find(name)
            card = newest.card
            summaries.append(
                {
                    "name": name,
                    "latest_version": newest.version if newest.state is ModelState.READY else None,
                    "versions": [versions[v].status() for v in sorted(versions)],
                    "framework": card.framework if card else None,
                    "task": card.task if card else None,
                    "input_kind": card.input.kind if card else None,
                    "labels": card.labels if card else None,
                    "description": card.description if card else None,
                }
            )
        return {"models": summaries}

    def carded_entry(self, name: str, version: int | None) -> ModelEntry:
        entry = self.registry.find(name, version)
        if entry.card is None:
            raise Unavailable(
                f"model {name} version {entry.version} has no valid card: {entry.reason}",
                retry_after_s=30,
            )
        return entry

    def model_detail(self, name: str, version: int | None) -> dict[str, Any]:
        """The card plus how this server runs the model."""
        entry = self.carded_entry(name, version)
        assert entry.card is not None
        batching = self.settings.batching_for(name)
        status = entry.status()
        return {
            "card": entry.card.model_dump(mode="json"),
            "serving": {
                "state": status["state"],
                "reason": status.get("reason"),
                "device": status.get("device"),
                "load_seconds": entry.load_seconds,
                **batching.model_dump(),
            },
        }

    def model_metrics(self, name: str, version: int | None) -> dict[str, Any]:
        """Held-out metrics from the card plus live serving stats."""
        entry = self.carded_entry(name, version)
        assert entry.card is not None
        return {
            "model": entry.name,
            "version": entry.version,
            "held_out": entry.card.metrics.model_dump(mode="json"),
            "serving": entry.stats.snapshot(),
        }


async def _in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """`asyncio.to_thread`, on a daemon thread: loading a model cannot be interrupted, and a
    stop while it runs (Ctrl-C during start-up) must not wait for it; the default executor
    is joined at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = function(*args), None
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        # RuntimeError: the loop is closed, nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="load-models", daemon=True).start()
    return await future


def _rows(
    adapter: InputAdapter, instances: Sequence[Any], budget: RequestBudget | None
) -> list[Any]:
    rows = []
    for index, instance in enumerate(instances):
        try:
            if budget is not None:
                budget.check()
            rows.append(adapter.to_row(instance, budget))
        except ServingError as exc:
            exc.message = f"instances[{index}]: {exc.message}"
            raise
    return rows


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


def label_request(scope_state: dict[str, Any], entry: ModelEntry) -> None:
    """Tell the observability middleware which model version served this request."""
    scope_state["model"] = entry.name
    scope_state["version"] = entry.version
    scope_state["stats"] = entry.stats


def _instance_help(card: Any, settings: Settings) -> str:
    from app.schemas.card import ImageInput, TabularInput

    spec = card.input
    if isinstance(spec, TabularInput):
        names = ", ".join(f.name for f in spec.features)
        return (
            f"an object with the {spec.n_features} features {{{names}}} or a list of "
            f"{spec.n_features} numbers in that order"
        )
    if isinstance(spec, ImageInput):
        return (
            f"a {spec.height}x{spec.width} list of lists of grey levels 0-{spec.max_value:g}"
            ' (white digit on black), or {"b64": "<base64 PNG/JPEG>"}'
        )
    return f"a string of review text, 1 to {settings.max_text_chars} characters"
