"""How a discovered model version comes to serve, and stops.

    discovered (card read, input kind made: a CardedVersion) -> verify the files' sha256
    -> load the runtime (and the adapter's files: a vocabulary) -> warm up every batch bucket
    -> replay the card's examples end to end (their recorded probabilities must come back)
    -> serve (the core starts its batcher)  -> READY, with a frozen ServedVersion
    -> retired (out of the policy, folder removed, unloaded): UNLOADING, takes no new
       requests, finishes those in flight -> batcher stopped, runtime dropped, memory freed
    ... STOPPED at shutdown

Any step that fails marks the version FAILED with a reason in the project's words (readiness
and the listing show it); the other versions serve. Loading runs on a daemon thread in the
background, so health endpoints answer meanwhile and a stop during start-up is immediate.
The steps of one load are `app.repository.loading`'s; applying a scan to the registry is
`app.repository.changes`'.

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
import time
from collections.abc import Callable

from app.batching import Batcher
from app.errors import Conflict
from app.kinds import InputAdapter, make_adapter
from app.metrics import Metrics
from app.repository.changes import apply_scans
from app.repository.config import ModelConfig
from app.repository.loading import collect, in_daemon_thread, input_limits, load_version
from app.repository.registry import ModelRegistry, ServedModel
from app.repository.scan import scan_repository
from app.repository.versions import CardedVersion, ModelEntry, ModelState, ServedVersion
from app.runtimes import Model, prepare_runtimes, runtime_of
from app.settings import (
    BatchingSettings,
    ExplainSettings,
    LimitsSettings,
    RepositorySettings,
    ServingSettings,
)

log = logging.getLogger(__name__)

YOUNG_GC_THRESHOLD = 20_000
# The core's: start the batcher of a loaded version (its card, kind, stats; its runtime).
Serve = Callable[[CardedVersion, Model], Batcher]


class Lifecycle:
    """Loads, warms up and replays every discovered version; hands the ready ones to `serve`.

    `serve(version, model)` (the core's) starts the version's batcher; the version is
    READY after it.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        metrics: Metrics,
        serve: Serve,
        *,
        repository: RepositorySettings,
        limits: LimitsSettings,
        batching: BatchingSettings,
        serving: ServingSettings,
        explain: ExplainSettings,
    ) -> None:
        self.repository = repository
        self.batching = batching
        # An unload waits out the longest request (prediction or explanation), then drains.
        self._longest_request_s = max(serving.request_timeout_ms, explain.explain_timeout_ms) / 1e3
        self._grace_period_s = serving.shutdown_grace_period_s
        self.registry = registry
        self.metrics = metrics
        self._serve = serve
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
        self._limits = input_limits(limits)
        for entry in registry:
            self._admit(entry)
            if entry.state is ModelState.FAILED:
                metrics.model_load_failures.labels(entry.name, str(entry.version)).inc()
        for name, model in registry.models.items():
            metrics.config_valid.labels(name).set(0 if model.config_error else 1)

    def _admit(self, entry: ModelEntry) -> None:
        card = entry.card
        if card is not None and entry.carded is None:
            # Per version, from its card alone: its schema and V2 spec exist at once.
            entry.admit(card, make_adapter(card, entry.folder, self._limits, load=False))
        self.metrics.model_ready.labels(entry.name, str(entry.version)).set(0)

    async def start(self) -> None:
        """Begin loading every version in the background, and poll the repository (when
        SYNERGY_MODEL_POLL_S > 0) meanwhile; returns at once."""
        self._loader = asyncio.create_task(self._load_all(), name="load-models")
        if self.repository.model_poll_s > 0:
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
        # Each framework's process set-up (a backend chosen before its library is imported)
        # once, before the first model loads.
        await in_daemon_thread(
            prepare_runtimes,
            {e.card.framework for e in self.registry if e.card is not None},
            self.repository.resolved_inference_threads(),
        )
        for entry in self.registry:  # the versions of the first scan (a snapshot)
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
        if entry.card is not None:
            # A framework first seen after start-up (polling, the repository API); a no-op
            # for the frameworks already set up.
            await in_daemon_thread(
                prepare_runtimes,
                [entry.card.framework],
                self.repository.resolved_inference_threads(),
            )
        carded = entry.carded
        model = None
        if carded is not None:
            model = await in_daemon_thread(
                load_version, entry, carded, self.repository, self.batching, lambda: self.stopping
            )
        if entry.state is ModelState.UNLOADING:  # retired (unloaded) while it loaded
            return
        if carded is not None and model is not None and not self.stopping:
            batcher = self._serve(carded, model)
            entry.ready(ServedVersion.of(carded, model, batcher, entry.leases))
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
            await asyncio.sleep(self.repository.model_poll_s)
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
                self.repository.models_dir,
                self.registry.policy,
                configs,
                self.registry.known(),
                only,
            )
            self.metrics.repository_scan.observe(time.perf_counter() - started)
            if scans is None:
                return []
            changes = apply_scans(self.registry, scans, only, self.metrics)
            for entry in changes.added:
                self._admit(entry)
            for model in changes.gone:
                self._retire_model(model)
            for entry in changes.retire:
                self._retire(entry)
            admitted = changes.admitted
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
        if not await entry.leases.wait_idle(self._longest_request_s + 1.0):
            log.warning(
                "model %s version %s: %d request(s) still hold it after their deadline; "
                "unloading it anyway",
                entry.name,
                entry.version,
                entry.leases.count,
            )
        served = entry.served
        if served is not None:
            await served.batcher.stop(self._grace_period_s)
        labels = (entry.name, str(entry.version))
        for gauge in (self.metrics.model_ready, self.metrics.queue_rows):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        model = served.model if served is not None else None
        entry.served = entry.carded = served = None
        self.registry.remove(entry)
        self.registry.refresh(entry.name)
        self.registry.changed()  # listeners drop what they cached of the version
        runtime = runtime_of(model) if model is not None else None
        live: list[tuple[Model, InputAdapter]] = [
            (e.served.model, e.served.kind)
            for e in self.registry
            if e.state is ModelState.READY
            and e.served is not None
            and runtime is not None
            and runtime.owns(e.served.model)
        ]
        del model
        await asyncio.to_thread(collect, runtime, live)
        log.info("model %s version %s unloaded", entry.name, entry.version)
