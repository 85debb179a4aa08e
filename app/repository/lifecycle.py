"""How a discovered model version comes to serve, and stops.

    discovered (card read, adapter made)  -> verify the files' sha256 against the card
    -> load the runtime (and the adapter's files: a vocabulary) -> warm up every batch bucket
    -> replay the card's examples end to end (their recorded probabilities must come back)
    -> serve (the core starts its batcher)  -> READY
    -> retired (out of the policy, folder removed, unloaded): UNLOADING, takes no new
       requests, finishes those in flight -> batcher stopped, runtime dropped, memory freed
    ... STOPPED at shutdown

Any step that fails marks the version FAILED with a reason in the project's words (readiness
and the listing show it); the other versions serve. Loading runs on a daemon thread in the
background, so health endpoints answer meanwhile and a stop during start-up is immediate.

With SYNERGY_MODEL_POLL_S > 0 the repository is scanned again every that many seconds (and on
`rescan`, the repository API's load): new models and versions are admitted and loaded, changed
configs are applied, versions the policy no longer selects are retired once a version it
selects is ready (TF Serving's availability-preserving order: a new version that fails never
costs the model its serving version), and models whose folder is gone are retired.
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
from app.budget import release_free_memory
from app.errors import Conflict
from app.metrics import Metrics
from app.repository.config import ModelConfig
from app.repository.registry import (
    ArtifactMismatch,
    ModelEntry,
    ModelRegistry,
    ModelScan,
    ModelState,
    ServedModel,
    load_failure_reason,
    scan_entries,
    scan_repository,
    verify,
)
from app.runtimes.base import Model
from app.runtimes.keras import KerasModel, batch_buckets, configure_backend
from app.runtimes.sklearn import SklearnModel
from app.runtimes.trust import library_version_problem
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
        max_instances=settings.limits.max_instances,
        max_text_chars=settings.limits.max_text_chars,
        max_image_pixels=settings.limits.max_image_pixels,
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
        self.started_up = False  # the start-up loading has finished
        self._loader: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        # Versions being unloaded, and versions queued or loading, with their tasks.
        self._retiring: dict[ModelEntry, asyncio.Task[None]] = {}
        self._loading: dict[ModelEntry, asyncio.Task[None]] = {}
        # A scan and its application, and the repository API's changes: short sections, never
        # held during a load or a retirement, so a config.json change applies at the next poll
        # whatever is loading.
        self._scan_lock = asyncio.Lock()
        # One version loads at a time (memory, and the CPU the serving versions need).
        self._load_lock = asyncio.Lock()
        # Per model, how many unloads the repository API was asked for: a load that sees it
        # change while it waits was overtaken by a later unload.
        self._unloads: dict[str, int] = {}
        self._limits = input_limits(settings)
        for entry in registry:
            self._admit(entry)
            if entry.state is ModelState.FAILED:
                metrics.model_load_failures.labels(entry.name, str(entry.version)).inc()
        for name, model in registry.models.items():
            metrics.config_valid.labels(name).set(0 if model.config_error else 1)

    def _admit(self, entry: ModelEntry) -> None:
        if entry.card is not None and entry.adapter is None:
            # Per version, from its card alone: its schema and V2 spec exist at once.
            entry.adapter = make_adapter(entry.card, entry.folder, self._limits, load=False)
        self.metrics.model_ready.labels(entry.name, str(entry.version)).set(0)

    async def start(self) -> None:
        """Begin loading every version in the background, and poll the repository (when
        SYNERGY_MODEL_POLL_S > 0) meanwhile; returns at once."""
        self._loader = asyncio.create_task(self._load_all(), name="load-models")
        if self.settings.repository.model_poll_s > 0:
            self._poller = asyncio.create_task(self._poll(), name="poll-models")

    async def wait_loaded(self) -> None:
        """Wait until every version has finished loading (ready or failed)."""
        if self._loader is not None:
            await asyncio.shield(self._loader)

    def stop_loading(self) -> None:
        """No version starts serving from now on (shutdown)."""
        self.stopping = True
        for task in (self._loader, self._poller, *self._loading.values()):
            if task is not None and not task.done():
                task.cancel()

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
                configure_backend, self.settings.repository.resolved_inference_threads()
            )
        for entry in self.registry:  # the versions of the first scan (a copy of the list)
            async with self._load_lock:
                if entry.state is ModelState.LOADING and entry not in self._loading:
                    await self._load_one(entry)
        self.started_up = True
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

    async def _load_one(self, entry: ModelEntry) -> None:
        """Load one admitted version and, if it passes every check, put it into service."""
        labels = (entry.name, str(entry.version))
        if not self.backend and entry.card is not None and entry.card.framework == "keras":
            # The first Keras version arrived after start-up (polling, the repository API).
            self.backend = await _in_daemon_thread(
                configure_backend, self.settings.repository.resolved_inference_threads()
            )
        loaded = await _in_daemon_thread(self.load, entry)
        if entry.state is ModelState.UNLOADING:  # retired (unloaded) while it loaded
            entry.model = None
            return
        if loaded and not self.stopping:
            self._serve(entry)
            entry.ready()
            self.metrics.model_ready.labels(*labels).set(1)
        elif entry.state is ModelState.FAILED:
            self.metrics.model_load_failures.labels(*labels).inc()
        self.registry.refresh(entry.name)
        self.registry.changed()

    # ------------------------------------------------------------------ live repository
    async def _poll(self) -> None:
        """Rescan every SYNERGY_MODEL_POLL_S seconds, from start-up on (a scan never waits
        for a load: configs, labels and traffic apply at the next poll)."""
        while not self.stopping:
            await asyncio.sleep(self.settings.repository.model_poll_s)
            try:
                await self.rescan()
            except Exception:  # a scan's failure must not end polling
                log.exception("scanning the models dir failed")

    async def rescan(
        self, only: str | None = None, *, load: bool = False, unloads: int | None = None
    ) -> list[ModelEntry]:
        """Scan the repository (or one model) and apply it: take changed configs, admit new
        versions and queue their loads, retire what left. Returns the admitted versions; it
        does not wait for their loads (`wait_loads`), which run one at a time in the
        background, so a scan is never held up by a load.

        `load`: the repository API's load of `only`, which also lifts an unload, unless the
        model's unload count is no longer `unloads` (Conflict: a later unload won).
        """
        async with self._scan_lock:
            if only is not None and unloads is not None:
                self._check_not_overtaken(only, unloads)
            if only is not None and load and only in self.registry.models:
                self.registry.models[only].unloaded = False
            started = time.perf_counter()
            configs: dict[str, ModelConfig | None] = {
                name: model.config for name, model in self.registry.models.items()
            }
            scans = await asyncio.to_thread(
                scan_repository,
                self.settings.repository.models_dir,
                self.registry.policy,
                configs,
                self.registry.known(),
                only,
            )
            self.metrics.repository_scan.observe(time.perf_counter() - started)
            if scans is None:
                return []
            admitted = self._apply(scans, only)
            if admitted:
                self.registry.changed()
            for entry in admitted:
                if entry.card is not None and entry.state is ModelState.LOADING:
                    self._queue_load(entry)
            self._retire_superseded()
            return admitted

    def _queue_load(self, entry: ModelEntry) -> None:
        task = asyncio.create_task(
            self._load_queued(entry), name=f"load-{entry.name}-{entry.version}"
        )
        self._loading[entry] = task
        task.add_done_callback(lambda _: self._loading.pop(entry, None))

    async def _load_queued(self, entry: ModelEntry) -> None:
        async with self._load_lock:
            # Retired (unloaded, out of the policy) while it waited, or stopping: not loaded.
            if self.stopping or entry.state is not ModelState.LOADING:
                return
            await self._load_one(entry)
        self._retire_superseded()

    async def wait_loads(self, name: str) -> None:
        """Wait until no version of `name` is queued or loading."""
        while pending := [t for e, t in self._loading.items() if e.name == name]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def load_model(self, name: str) -> None:
        """The repository API's load: lift an unload of `name`, rescan it now and wait for its
        versions to load (ready or failed).

        The later call wins: a load that arrives while an unload of the model waits for its
        requests in flight waits for that unload, then loads the model again; a load that an
        unload arriving later overtakes raises Conflict (409) and the model stays unloaded.
        """
        unloads = self._unloads.get(name, 0)
        await self._wait_retired(name)
        await self.rescan(name, load=True, unloads=unloads)
        await self.wait_loads(name)
        self._check_not_overtaken(name, unloads)

    def _check_not_overtaken(self, name: str, unloads: int) -> None:
        if self._unloads.get(name, 0) != unloads:
            raise Conflict(
                f"model {name} was unloaded by a later request while this load was in "
                f"progress; it stays unloaded (load it again with POST "
                f"/v2/repository/models/{name}/load)"
            )

    def _apply(self, scans: dict[str, ModelScan], only: str | None) -> list[ModelEntry]:
        """Apply a scan on the event loop; returns the admitted versions to load."""
        registry = self.registry
        admitted: list[ModelEntry] = []
        if only is None:
            for name in [n for n in registry.models if n not in scans]:
                log.info("model %s: its folder is gone; retiring it", name)
                self._retire_model(registry.models[name])
        for name, scan in scans.items():
            model = registry.models.get(name)
            if model is not None and model.unloaded:
                continue
            if model is None:
                for entry in scan_entries(scan):
                    self._log_new(entry)
                    model = registry.add(entry, scan.config)
                    model.required = False
                    self._admit(entry)
                    admitted.append(entry)
                if model is not None:
                    self._take_config(model, scan)
                continue
            self._take_config(model, scan)
            if scan.problem is not None:
                held = model.versions.get(0)
                if not [v for v in model.versions if v != 0] and (
                    held is None or held.reason != scan.problem
                ):
                    for entry in scan_entries(scan):
                        self._log_new(entry)
                        registry.add(entry)
                        self._admit(entry)
                if scan.candidates or "cannot be read" in scan.problem:
                    continue  # unreadable for now: what serves keeps serving
            if scan.candidates and 0 in model.versions:
                registry.remove(model.versions[0])
            for version, entry in scan.entries.items():
                held = model.versions.get(version)
                if held is not None and held.state is not ModelState.FAILED:
                    continue
                if held is not None:
                    registry.remove(held)
                    log.info("model %s version %s changed on disk; trying it again", name, version)
                self._log_new(entry)
                registry.add(entry)
                self._admit(entry)
                admitted.append(entry)
            for version, entry in list(model.versions.items()):
                if version == 0 or version in scan.served:
                    continue
                if entry.state is ModelState.FAILED:
                    registry.remove(entry)
                elif entry.state is ModelState.READY and version not in scan.candidates:
                    log.info("model %s version %s: its folder is gone; retiring it", name, version)
                    self._retire(entry)
            registry.refresh(name)
        return admitted

    def _take_config(self, model: ServedModel, scan: ModelScan) -> None:
        if scan.config is not None and scan.config is not model.config:
            if scan.config != model.config:
                log.info("model %s: serving config %s", model.name, scan.config.model_dump())
            model.config = scan.config
        model.policy = scan.policy
        for folder, why in scan.refused.items():
            if folder not in model.refused:
                log.error("model %s: %s", model.name, why)
        model.refused = dict(scan.refused)
        if scan.config_error != model.config_error:
            if scan.config_error is not None:
                log.error(
                    "model %s: %s; the previous config stays in force",
                    model.name,
                    scan.config_error,
                )
                self.metrics.config_errors.labels(model.name).inc()
            model.config_error = scan.config_error
        self.metrics.config_valid.labels(model.name).set(0 if model.config_error else 1)

    def _log_new(self, entry: ModelEntry) -> None:
        if entry.state is ModelState.FAILED:
            log.error("model %s version %s failed: %s", entry.name, entry.version, entry.reason)
        else:
            log.info("model %s version %s found; loading it", entry.name, entry.version)

    def _retire_superseded(self) -> None:
        """Retire ready versions the policy no longer selects, once one it selects is ready."""
        for model in list(self.registry.models.values()):
            served = self._served_versions(model)
            if not any(
                e.state is ModelState.READY for v, e in model.versions.items() if v in served
            ):
                continue
            for version, entry in list(model.versions.items()):
                if version not in served and entry.state is ModelState.READY:
                    log.info(
                        "model %s version %s: no longer selected by the version policy (%s); "
                        "retiring it",
                        model.name,
                        version,
                        model.policy.describe(),
                    )
                    self._retire(entry)

    @staticmethod
    def _served_versions(model: ServedModel) -> set[int]:
        """The versions the model's policy selects among its live (not retired) versions."""
        live = [
            v
            for v, e in model.versions.items()
            if v != 0 and e.state in (ModelState.READY, ModelState.LOADING, ModelState.FAILED)
        ]
        return set(model.policy.select(live))

    def _retire_model(self, model: ServedModel) -> None:
        for entry in list(model.versions.values()):
            if entry.state in (ModelState.READY, ModelState.LOADING):
                self._retire(entry)
            elif entry.state is ModelState.FAILED:
                self.registry.remove(entry)
        self.registry.refresh(model.name)
        self.registry.changed()

    async def unload(self, name: str) -> None:
        """The repository API's unload: retire every version of `name` and keep it unloaded
        until `load_model`; returns when its versions are unloaded (requests in flight
        finish first). Raises NotFound. A load in progress is overtaken (it answers 409)."""
        async with self._scan_lock:
            model = self.registry.models.get(name)
            if model is None or not model.unloaded:
                model = self.registry.model(name)  # NotFound for an unknown model
            self._unloads[name] = self._unloads.get(name, 0) + 1
            if not model.unloaded:  # unloading an unloaded model succeeds too (Triton)
                model.unloaded = True
                for entry in list(model.versions.values()):
                    if entry.state is not ModelState.UNLOADING:
                        self._retire(entry)
                self.registry.refresh(name)
                self.registry.changed()
        await self._wait_retired(name)

    async def _wait_retired(self, name: str) -> None:
        """Wait until no version of `name` is being unloaded."""
        while pending := [t for e, t in self._retiring.items() if e.name == name]:
            await asyncio.gather(*pending, return_exceptions=True)

    def _retire(self, entry: ModelEntry) -> asyncio.Task[None]:
        """Stop routing to `entry` now; unload it when its requests have finished."""
        entry.state = ModelState.UNLOADING
        self.metrics.model_ready.labels(entry.name, str(entry.version)).set(0)
        self.registry.refresh(entry.name)
        task = asyncio.create_task(self._unload(entry), name=f"retire-{entry.name}-{entry.version}")
        self._retiring[entry] = task
        task.add_done_callback(lambda _: self._retiring.pop(entry, None))
        return task

    async def _unload(self, entry: ModelEntry) -> None:
        settings = self.settings
        longest_s = (
            max(settings.serving.request_timeout_ms, settings.explain.explain_timeout_ms) / 1000.0
        )
        if not await entry.wait_idle(longest_s + 1.0):
            log.warning(
                "model %s version %s: %d request(s) still hold it after their deadline; "
                "unloading it anyway",
                entry.name,
                entry.version,
                entry.leases,
            )
        if entry.batcher is not None:
            await entry.batcher.stop(settings.serving.shutdown_grace_period_s)
        labels = (entry.name, str(entry.version))
        for gauge in (self.metrics.model_ready, self.metrics.queue_rows):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        model, entry.model, entry.adapter = entry.model, None, None
        entry.batcher = None
        self.registry.remove(entry)
        self.registry.refresh(entry.name)
        self.registry.changed()  # listeners drop what they cached of the version
        compiled = isinstance(model, KerasModel) and self.backend == "jax"
        live: list[tuple[Model | None, InputAdapter | None]] = [
            (e.model, e.adapter)
            for e in self.registry
            if e.state is ModelState.READY and isinstance(e.model, KerasModel)
        ]
        del model
        await asyncio.to_thread(_collect, live if compiled else None)
        log.info("model %s version %s unloaded", entry.name, entry.version)

    async def wait_retired(self) -> None:
        """Wait for the retirements in progress (tests, the repository API)."""
        while self._retiring:
            await asyncio.gather(*list(self._retiring.values()), return_exceptions=True)

    def load(self, entry: ModelEntry) -> bool:
        """Verify, load, warm up and replay one version (on a worker thread); False if it
        failed (the entry then says why)."""
        card, adapter = entry.card, entry.adapter
        assert card is not None and adapter is not None
        started = time.perf_counter()
        try:
            if not verify(entry):
                return False
            mismatch = library_version_problem(card.framework, card.library_versions)
            if mismatch is not None and not self.settings.repository.allow_library_version_mismatch:
                entry.fail(f"loading failed: {mismatch}")
                return False
            model: Model
            if card.framework == "keras":
                batching = self.settings.batching.for_model(entry.name)
                model = KerasModel(
                    card, entry.folder, buckets=batch_buckets(batching.max_batch_size)
                )
            else:
                model = SklearnModel(card, entry.folder)
            model.load()
            adapter.load()
            if self.settings.repository.warmup:
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


def _collect(recompile: list[tuple[Model | None, InputAdapter | None]] | None = None) -> None:
    """Free an unloaded version's memory: the runtime's objects, and glibc's freed arenas.

    `recompile` (after a Keras version on JAX): JAX keeps every function it compiled in
    process-wide caches that outlive the model (each unload and load of a text model left
    ~15 MB behind, bench/reload_memory.py), so they are cleared, and the versions still
    serving are warmed up again here, off the event loop, rather than compiling on their
    next request.
    """
    gc.collect()
    if recompile is not None:
        import jax

        jax.clear_caches()  # type: ignore[no-untyped-call]
        gc.collect()
        for model, adapter in recompile:
            if model is not None and adapter is not None:
                try:
                    warm_up(model, adapter)
                except Exception:  # it serves anyway; its next request compiles
                    log.exception("warming %s up again after an unload failed", adapter.card.name)
    release_free_memory()


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
    card = adapter.card
    for example, output in zip(examples, predicted, strict=True):
        recorded = card.recorded_output(example)
        if recorded is None:
            continue
        # Probabilities are 0-1; a regressor's values are in the target's unit: relative.
        drift = max(
            abs(a - b) / (1.0 if card.is_classifier else max(1.0, abs(b)))
            for a, b in zip(output, recorded, strict=True)
        )
        if drift > WARMUP_TOLERANCE:
            what = "probabilities" if card.is_classifier else "predictions"
            raise ArtifactMismatch(
                f"the loaded model does not reproduce the {what} recorded when it was saved "
                f"for a card example (off by {drift:.2g}); the artifact or the preprocessing "
                "differs from what was saved"
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
