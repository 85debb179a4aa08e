"""The monitoring facade the app holds: record predictions, take feedback, build reports.

Request path cost: `record` copies the prediction's rows and probabilities into the writer's
bounded queue (and, when the payload log samples this request, queues it for that log too).
Everything else runs in the writer's thread and process, the payload log's thread, or this
module's small pool of database threads, never the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry

from app.errors import NotFound, Unavailable
from app.monitoring.database import database_url, is_disk_full
from app.monitoring.feedback import Asked, check_file, describe, store_feedback, storing
from app.monitoring.payload_log import PayloadLogger
from app.monitoring.profile import (
    Profile,
    StatisticsComputer,
)
from app.monitoring.quality import LiveQuality, drift_report
from app.monitoring.store import Store
from app.monitoring.writer import Writer
from app.repository import CardedVersion, ModelRegistry
from app.schemas.card import ModelCard
from app.series import MonitoringSeries
from app.settings import DriftSettings, PayloadLogSettings, StoreSettings
from app.tasks import task_of

if TYPE_CHECKING:
    from app.events import PredictionEvent

log = logging.getLogger(__name__)
T = TypeVar("T")

DATABASE_THREADS = 4
PRUNE_LOG_INTERVAL_S = 60.0


class Monitor:
    """Prediction store, feedback, live accuracy, drift and payload log of one server."""

    def __init__(
        self,
        store_settings: StoreSettings,
        drift_settings: DriftSettings,
        payload_log_settings: PayloadLogSettings,
        registry: ModelRegistry,
        metrics: CollectorRegistry,
    ) -> None:
        self.store_settings = store_settings
        self.drift_settings = drift_settings
        self.payload_log_sample = payload_log_settings.payload_log_sample
        self.registry = registry
        self.enabled = store_settings.store_predictions
        self.store: Store | None = None
        self.writer: Writer | None = None
        self.payload_log: PayloadLogger | None = None
        self.started = False
        self._computers: dict[tuple[str, int], StatisticsComputer] = {}
        self._profiles: dict[tuple[str, int], Profile | None] = {}
        self._lock = threading.Lock()
        self._pruned_logged_at = -PRUNE_LOG_INTERVAL_S
        self._executor = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="monitoring-db")
        self._feedback_executor = ThreadPoolExecutor(
            DATABASE_THREADS, thread_name_prefix="monitoring-feedback"
        )
        self.series = MonitoringSeries(metrics)
        if payload_log_settings.payload_log.strip().lower() not in ("", "off"):
            self.payload_log = PayloadLogger(
                payload_log_settings.payload_log.strip(),
                max_events=payload_log_settings.payload_log_queue_events,
                on_drop=self.series.dropped.labels("payload_log").inc,
                max_bytes=payload_log_settings.payload_log_queue_bytes,
                max_event_bytes=payload_log_settings.payload_log_max_event_bytes,
                max_file_bytes=payload_log_settings.payload_log_max_file_bytes,
                backup_files=payload_log_settings.payload_log_backup_files,
            )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect, migrate and start the writer (on a thread). A database that cannot be
        reached is logged and leaves the store off: predictions keep serving; feedback and
        monitoring answer 503."""
        if self.payload_log is not None:
            self.payload_log.start()
        if not self.enabled:
            return
        url = database_url(
            self.store_settings.database_url.get_secret_value()
            if self.store_settings.database_url
            else None,
            self.store_settings.store_dir,
        )
        try:
            store = await asyncio.get_running_loop().run_in_executor(
                self._executor, _open_store, url
            )
        except Exception as exc:  # noqa: BLE001 - reported, serving goes on
            log.error("the prediction store is off: %s", describe(exc))
            return
        self.store = store
        self.writer = Writer(
            url,
            max_rows=self.store_settings.store_queue_rows,
            batch_rows=self.store_settings.store_batch_rows,
            flush_interval_s=self.store_settings.store_flush_interval_ms / 1000,
            on_drop=self.series.dropped.labels("store").inc,
            on_tick=self.housekeeping,
            tick_interval_s=self.drift_settings.monitoring_interval_s,
            max_bytes=self.store_settings.store_max_bytes,
            max_row_bytes=self.store_settings.store_max_row_bytes,
            on_omit=self.series.omitted_inputs.inc,
            on_prune=self._pruned,
            max_queue_bytes=self.store_settings.store_queue_bytes,
        )
        self.writer.start()
        self.started = True
        log.info("prediction store on %s", store.dialect)

    async def stop(self) -> None:
        """Write what is queued, then close."""
        loop = asyncio.get_running_loop()
        if self.writer is not None:
            await loop.run_in_executor(None, self.writer.stop)
        if self.payload_log is not None:
            await loop.run_in_executor(None, self.payload_log.stop)
        if self.store is not None:
            self.store.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._feedback_executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ request path
    def record(self, event: PredictionEvent) -> None:
        """Queue one finished prediction (never blocks, never raises for a full queue).

        On the event loop for every request: the writer copies the rows and probabilities
        into its arrays; the labels, statistics and compact forms are computed by the writer
        process."""
        if self.writer is None and self.payload_log is None:
            return
        entry = event.entry or self.registry.versions(event.model)[event.version].carded
        if entry is None:  # a version serves only once carded
            return
        route = event.protocol or "v1"
        if self.writer is not None:
            self.writer.submit(
                event.request_id,
                entry,
                event.caller,
                route,
                time.time(),
                event.rows,
                event.probabilities,
            )
        if self.payload_log is not None and random.random() < self.payload_log_sample:  # noqa: S311
            self.payload_log.submit(
                event.request_id,
                entry.name,
                entry.version,
                event.rows,
                functools.partial(task_of(entry.card).encode_v1, entry.card),
                event.probabilities,
                event.warnings,
            )

    def computer(self, entry: CardedVersion) -> StatisticsComputer:
        """The statistics computer of a version (built once, on first use)."""
        key = (entry.name, entry.version)
        with self._lock:
            computer = self._computers.get(key)
            if computer is None:
                computer = StatisticsComputer(entry.card, entry.folder)
                self._computers[key] = computer
            return computer

    # ------------------------------------------------------------------ feedback
    async def feedback(
        self,
        name: str,
        request_id: str,
        labels: Sequence[str | float | list[float] | None],
        caller: str = "",
        admin: bool = False,
    ) -> dict[str, Any]:
        """Store the true labels of one prediction made by `caller` (an API key's fingerprint;
        an admin key may label anyone's); returns once committed (see README)."""
        self.registry.versions(name)  # 404 for an unknown model
        self._require_store()
        return await asyncio.get_running_loop().run_in_executor(
            self._feedback_executor,
            self._feedback,
            name,
            request_id,
            labels,
            None if admin else caller,
        )

    def _feedback(
        self,
        name: str,
        request_id: str,
        labels: Sequence[str | float | list[float] | None],
        caller: str | None,
    ) -> dict[str, Any]:
        assert self.store is not None
        return store_feedback(
            self.store,
            self.writer,
            self._card,
            Asked(name, request_id, labels, caller),
            self.store_settings.store_flush_interval_ms / 1000,
        )

    def _card(self, name: str, version: int) -> ModelCard:
        versions = self.registry.versions(name)
        entry = versions.get(version)
        if entry is not None and entry.card is not None:
            return entry.card
        return next(e.card for e in versions.values() if e.card is not None)

    # ------------------------------------------------------------------ reports
    async def report(
        self, name: str, version: int | None, caller: str | None = None
    ) -> dict[str, Any]:
        """Live accuracy and drift of every version of a model (or of one), over every
        caller's rows or (`caller`, a key fingerprint) one caller's."""
        if version is None:
            entries = [
                e.carded for e in self.registry.versions(name).values() if e.carded is not None
            ]
        else:
            entries = [self.registry.carded(name, version)]
        self._require_store()
        reports = await self._in_thread(
            lambda: [
                storing(self.version_report, e, caller)
                for e in sorted(entries, key=lambda e: e.version)
            ]
        )
        return {
            "model": name,
            "caller": "all" if caller is None else "this key",
            "versions": reports,
        }

    def version_report(self, entry: CardedVersion, caller: str | None = None) -> dict[str, Any]:
        """The monitoring report of one version (blocking), over every caller's rows (then it
        updates the version's Prometheus gauges) or one caller's."""
        store = self.store
        card = entry.card
        assert store is not None
        name, version = entry.name, entry.version
        predicted_rows, feedback_rows, correct = store.counts(name, version, caller)
        # The task says which live figures apply: accuracy and a confusion matrix for labels,
        # errors for values.
        live = LiveQuality(
            store, name, version, caller, self.drift_settings.accuracy_window_rows, correct
        )
        quality = task_of(card).live_quality(card, feedback_rows, live)
        report = {
            "version": version,
            "rows_predicted": predicted_rows,
            "rows_with_feedback": feedback_rows,
            **quality,
            "drift": self._drift(entry, store, caller),
            "input_warnings": {
                **entry.stats.warning_counts(),
                "held_out_share": card.out_of_domain.held_out_warned
                if card.out_of_domain is not None
                else None,
            },
        }
        if caller is not None or live.accuracies is None:
            return report
        v = str(version)
        self.series.stored_rows.labels(name, v).set(predicted_rows)
        self.series.feedback_rows.labels(name, v).set(feedback_rows)
        all_time, recent_accuracy = live.accuracies
        for window, figures in (("all", all_time), ("recent", recent_accuracy)):
            if figures["accuracy"] is not None:
                self.series.live_accuracy.labels(name, v, window).set(figures["accuracy"])
        self.series.below_held_out.labels(name, v).set(int(recent_accuracy["below_held_out"]))
        for result in report["drift"]["statistics"]:
            stat = result["statistic"]
            self.series.drift_score.labels(name, v, stat).set(result["score"])
            self.series.drift_p_value.labels(name, v, stat).set(result["p_value"])
            self.series.drift_flag.labels(name, v, stat).set(int(result["flag"]))
        return report

    def _drift(self, entry: CardedVersion, store: Store, caller: str | None) -> dict[str, Any]:
        window_rows = self.drift_settings.drift_window_rows
        window = store.recent_rows(entry.name, entry.version, window_rows, caller)
        profile = self.profile(entry)
        names = self.computer(entry).names if profile is not None else []
        return drift_report(profile, names, window, self.drift_settings)

    def profile(self, entry: CardedVersion) -> Profile | None:
        """The version's reference profile (read once), None when its card names none."""
        key = (entry.name, entry.version)
        with self._lock:
            if key in self._profiles:
                return self._profiles[key]
        card = entry.card
        profile: Profile | None = None
        profile_file = getattr(card, "profile_file", None)
        if profile_file:
            try:
                profile = Profile.model_validate_json((entry.folder / profile_file).read_bytes())
            except Exception as exc:  # noqa: BLE001 - drift off for this version, logged
                log.error(
                    "%s/%s: the reference profile is unreadable: %s",
                    entry.name,
                    entry.version,
                    describe(exc),
                )
        with self._lock:
            self._profiles[key] = profile
        return profile

    def _pruned(self, rows: int) -> None:
        self.series.deleted_rows.inc(rows)
        now = time.monotonic()
        if now - self._pruned_logged_at >= PRUNE_LOG_INTERVAL_S:
            self._pruned_logged_at = now
            log.warning(
                "prediction store: %d oldest rows deleted to stay within its byte budget "
                "(SYNERGY_STORE_MAX_BYTES) or to make room on a full disk "
                "(synergy_monitoring_deleted_rows_total counts them all)",
                rows,
            )

    def housekeeping(self) -> None:
        """Retention, then refresh the Prometheus gauges of every version (writer thread)."""
        store = self.store
        if store is None:
            return
        check_file(store)
        retention = (
            self.store_settings.store_retention_days * 86400
            if self.store_settings.store_retention_days
            else None,
            self.store_settings.store_max_rows,
        )
        try:
            deleted = store.prune(*retention)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._pruned(store.make_room())  # the reserve lets the delete run
            deleted = store.prune(*retention)
        if deleted:
            log.info("prediction store: %d rows past retention deleted", deleted)
        for entry in self.registry:
            if entry.carded is not None:
                self.version_report(entry.carded)

    # ------------------------------------------------------------------ helpers
    def _require_store(self) -> None:
        if not self.enabled:
            raise NotFound(
                "the prediction store is off on this server (SYNERGY_STORE_PREDICTIONS=false), "
                "so there is no feedback or live monitoring"
            )
        if self.store is None:
            raise Unavailable(
                "the prediction store is not available (the database could not be reached at "
                "start-up; see the server log)",
                retry_after_s=30,
            )

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)


def _open_store(url: str) -> Store:
    store = Store(url)
    store.migrate()
    return store
