"""How a discovered model version comes to serve, and stops.

    discovered (card read, adapter made)  -> verify the files' sha256 against the card
    -> load the runtime (and the adapter's files: a vocabulary) -> warm up every batch bucket
    -> replay the card's examples end to end (their recorded probabilities must come back)
    -> serve (the core starts its batcher)  -> READY ... STOPPED at shutdown

Any step that fails marks the version FAILED with a reason in the project's words (readiness
and the listing show it); the other versions serve. Loading runs on a daemon thread in the
background, so health endpoints answer meanwhile and a stop during start-up is immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from app.adapters import InputAdapter, InputLimits, make_adapter
from app.metrics import Metrics
from app.repository.registry import (
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

T = TypeVar("T")
# Float noise between backends and devices (TF32 on GPUs) stays far below this; a skewed
# preprocessing or a wrong artifact is far above it.
WARMUP_TOLERANCE = 2e-3
YOUNG_GC_THRESHOLD = 20_000


def input_limits(settings: Settings) -> InputLimits:
    """The settings' limits on a request's inputs, for the adapters."""
    return InputLimits(
        max_instances=settings.max_instances,
        max_text_chars=settings.max_text_chars,
        max_image_pixels=settings.max_image_pixels,
    )


class Lifecycle:
    """Loads, warms up and replays every discovered version; hands the ready ones to `serve`.

    `serve(entry)` (the core's) starts the version's batcher; the version is READY after it.
    """

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        metrics: Metrics,
        serve: Callable[[ModelEntry], Any],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self._serve = serve
        self.backend = ""
        self.stopping = False
        self._loader: asyncio.Task[None] | None = None
        limits = input_limits(settings)
        for entry in registry:
            if entry.card is not None:
                # Per version, from its card alone: its schema and V2 spec exist at once.
                entry.adapter = make_adapter(entry.card, entry.folder, limits, load=False)
            metrics.model_ready.labels(entry.name, str(entry.version)).set(0)

    async def start(self) -> None:
        """Begin loading every version in the background; returns at once."""
        self._loader = asyncio.create_task(self._load_all(), name="load-models")

    async def wait_loaded(self) -> None:
        """Wait until every version has finished loading (ready or failed)."""
        if self._loader is not None:
            await asyncio.shield(self._loader)

    def stop_loading(self) -> None:
        """No version starts serving from now on (shutdown)."""
        self.stopping = True
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()

    def mark_stopped(self) -> None:
        """After shutdown: every served version is STOPPED."""
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
            if await _in_daemon_thread(self.load, entry) and not self.stopping:
                self._serve(entry)
                entry.ready()
                self.metrics.model_ready.labels(entry.name, str(entry.version)).set(1)
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

    def load(self, entry: ModelEntry) -> bool:
        """Verify, load, warm up and replay one version (on a worker thread); False if it
        failed (the entry then says why)."""
        card, adapter = entry.card, entry.adapter
        assert card is not None and adapter is not None
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
            adapter.load()
            if self.settings.warmup:
                warm_up(model, adapter)
            if self.stopping:  # stopped while it loaded: it never served
                return False
        except Exception as exc:
            log.exception("loading %s/%s failed", entry.name, entry.version)
            entry.fail(load_failure_reason(card, exc))
            return False
        entry.model = model
        entry.load_seconds = round(time.perf_counter() - started, 3)
        log.info(
            "model %s version %s ready on %s in %.2fs",
            entry.name,
            entry.version,
            model.device,
            entry.load_seconds,
        )
        return True


def warm_up(model: Model, adapter: InputAdapter) -> None:
    """Compile every batch bucket, then replay the card's examples end to end.

    The examples' recorded probabilities must come back (within float noise): a model that
    loads but predicts differently from training (preprocessing skew, a broken backend) is
    failed here rather than served. Raises ArtifactMismatch.
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
        drift = max(abs(a - b) for a, b in zip(probabilities, example.probabilities, strict=True))
        if drift > WARMUP_TOLERANCE:
            raise ArtifactMismatch(
                f"the loaded model does not reproduce the probabilities recorded at "
                f"training time for a card example (off by {drift:.2g}); the artifact or "
                "the preprocessing differs from what was trained"
            )


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
