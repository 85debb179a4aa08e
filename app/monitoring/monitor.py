"""The monitoring facade the app holds: record predictions, take feedback, build reports.

Request path cost: `record` copies the prediction's rows and probabilities into the writer's
bounded queue (and, when the payload log samples this request, queues it for that log too).
Everything else runs in the writer's thread and process, the payload log's thread, or this
module's small pool of database threads, never the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from app.errors import InvalidInput, NotFound, Unavailable
from app.monitoring.payload_log import PayloadLogger
from app.monitoring.profile import (
    PREDICTED_LABEL,
    CategoricalReference,
    ContinuousReference,
    Profile,
    StatisticsComputer,
    category_names,
)
from app.monitoring.stats import (
    DriftResult,
    categorical_drift,
    continuous_drift,
    wilson_interval,
)
from app.monitoring.store import Store, database_url, is_disk_full
from app.monitoring.writer import Writer
from app.repository import ModelEntry, ModelRegistry
from app.schemas.card import HeldOutMetrics, ModelCard, RegressionMetrics
from app.settings import Settings

if TYPE_CHECKING:
    from app.events import PredictionEvent

log = logging.getLogger(__name__)
T = TypeVar("T")

# Feedback for a request whose rows are still queued on this replica waits for them this long.
# A writer that is stuck (a batch in flight for over writer.STUCK_S) is not waited for at all:
# the caller gets a 503 to retry. Feedback waits on threads of its own, so monitoring
# reports never queue behind it.
FEEDBACK_FLUSH_WAIT_S = 10.0
DATABASE_THREADS = 4
PRUNE_LOG_INTERVAL_S = 60.0


class Monitor:
    """Prediction store, feedback, live accuracy, drift and payload log of one server."""

    def __init__(
        self, settings: Settings, registry: ModelRegistry, metrics: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.enabled = settings.store_predictions
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
        self.dropped = Counter(
            "synergy_monitoring_dropped_rows_total",
            "Predicted rows not stored (queue full or database error) or not payload-logged.",
            ["sink"],
            registry=metrics,
        )
        self.omitted_inputs = Counter(
            "synergy_monitoring_inputs_omitted_total",
            "Stored rows whose compact input was over SYNERGY_STORE_MAX_ROW_BYTES (their "
            "statistics and prediction are stored, the input is not).",
            registry=metrics,
        )
        self.deleted_rows = Counter(
            "synergy_monitoring_deleted_rows_total",
            "Stored rows deleted before their retention: over the byte budget "
            "(SYNERGY_STORE_MAX_BYTES) or to make room on a full disk.",
            registry=metrics,
        )
        self.feedback_rows = Gauge(
            "synergy_feedback_rows",
            "Stored rows with a true label from feedback.",
            ["model", "version"],
            registry=metrics,
        )
        self.stored_rows = Gauge(
            "synergy_monitoring_rows",
            "Stored predicted rows (within retention).",
            ["model", "version"],
            registry=metrics,
        )
        self.live_accuracy = Gauge(
            "synergy_live_accuracy",
            "Accuracy on rows with feedback (window: all or recent).",
            ["model", "version", "window"],
            registry=metrics,
        )
        self.below_held_out = Gauge(
            "synergy_live_accuracy_below_held_out",
            "1 when the recent live accuracy's Wilson 95% interval lies below the card's "
            "held-out accuracy.",
            ["model", "version"],
            registry=metrics,
        )
        self.drift_score = Gauge(
            "synergy_drift_score",
            "PSI of the recent window against the training profile.",
            ["model", "version", "statistic"],
            registry=metrics,
        )
        self.drift_p_value = Gauge(
            "synergy_drift_p_value",
            "KS (continuous) or chi-squared (categorical) p-value of the recent window.",
            ["model", "version", "statistic"],
            registry=metrics,
        )
        self.drift_flag = Gauge(
            "synergy_drift_flag",
            "1 when the statistic drifted (p-value and PSI past their thresholds).",
            ["model", "version", "statistic"],
            registry=metrics,
        )
        if settings.payload_log.strip().lower() not in ("", "off"):
            self.payload_log = PayloadLogger(
                settings.payload_log.strip(),
                max_events=settings.payload_log_queue_events,
                on_drop=self.dropped.labels("payload_log").inc,
                max_bytes=settings.payload_log_queue_bytes,
                max_event_bytes=settings.payload_log_max_event_bytes,
                max_file_bytes=settings.payload_log_max_file_bytes,
                backup_files=settings.payload_log_backup_files,
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
        settings = self.settings
        url = database_url(
            settings.database_url.get_secret_value() if settings.database_url else None,
            settings.store_dir,
        )
        try:
            store = await asyncio.get_running_loop().run_in_executor(
                self._executor, _open_store, url
            )
        except Exception as exc:  # noqa: BLE001 - reported, serving goes on
            log.error("the prediction store is off: %s", _describe(exc))
            return
        self.store = store
        self.writer = Writer(
            url,
            max_rows=settings.store_queue_rows,
            batch_rows=settings.store_batch_rows,
            flush_interval_s=settings.store_flush_interval_ms / 1000,
            on_drop=self.dropped.labels("store").inc,
            on_tick=self.housekeeping,
            tick_interval_s=settings.monitoring_interval_s,
            max_bytes=settings.store_max_bytes,
            max_row_bytes=settings.store_max_row_bytes,
            on_omit=self.omitted_inputs.inc,
            on_prune=self._pruned,
            max_queue_bytes=settings.store_queue_bytes,
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
        entry = self.registry.versions(event.model)[event.version]
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
        if self.payload_log is not None and random.random() < self.settings.payload_log_sample:  # noqa: S311
            self.payload_log.submit(
                event.request_id,
                entry.name,
                entry.version,
                event.rows,
                event.labels,
                event.probabilities,
                event.warnings,
            )

    def computer(self, entry: ModelEntry) -> StatisticsComputer:
        """The statistics computer of a version (built once, on first use)."""
        key = (entry.name, entry.version)
        with self._lock:
            computer = self._computers.get(key)
            if computer is None:
                assert entry.card is not None
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
        store = self.store
        assert store is not None
        _storing(self._check_file, store)
        written = True
        if self.writer is not None:
            written = self.writer.wait_written(request_id, FEEDBACK_FLUSH_WAIT_S)
        rows = _storing(store.prediction, name, request_id, caller)
        if not rows and store.dialect != "sqlite":
            # Another replica may have made the prediction and still hold its rows in its
            # queue: they reach the shared database within one flush interval.
            deadline = time.monotonic() + 2 * self.settings.store_flush_interval_ms / 1000 + 1
            while not rows and time.monotonic() < deadline:
                time.sleep(0.1)
                rows = _storing(store.prediction, name, request_id, caller)
        if not rows and not written:
            raise Unavailable(
                "the prediction store's writer is behind (its last batch has not committed "
                "yet), so this prediction may not be stored yet; retry shortly",
                retry_after_s=5,
            )
        if not rows:
            raise NotFound(
                f"model {name} has no stored prediction with request id {request_id!r} made "
                "with this API key; send the X-Request-ID of a prediction response of this "
                "model, with the key that made it (predictions are kept for the retention "
                "period, and not at all when the store was full or off)"
            )
        if len(labels) != len(rows):
            raise InvalidInput(
                f"request {request_id} predicted {len(rows)} instance(s) but {len(labels)} "
                f"label(s) were sent; send one label (or null) per instance, in order"
            )
        version = rows[0][1]
        card = self._card(name, version)
        known = list(card.labels)
        texts: list[str | None] = []
        for index, label in enumerate(labels):
            if label is None:
                texts.append(None)
            elif card.is_classifier:
                if not isinstance(label, str) or label not in known:
                    raise InvalidInput(
                        f"labels[{index}]: {label!r} is not a label of model {name} version "
                        f"{version}; use one of {known} or null"
                    )
                texts.append(label)
            else:
                values = label if isinstance(label, list) else [label]
                if isinstance(label, str) or len(values) != len(known):
                    raise InvalidInput(
                        f"labels[{index}]: model {name} is a regressor: send its true value, "
                        + ("a number" if len(known) == 1 else f"a list of {len(known)} numbers")
                        + " (or null)"
                    )
                texts.append(json.dumps([float(v) for v in values]))
        given = {
            row_id: text
            for (row_id, _, _), text in zip(rows, texts, strict=True)
            if text is not None
        }
        _storing(store.set_feedback, given)
        return {
            "model": name,
            "version": version,
            "request_id": request_id,
            "rows": len(rows),
            "labelled": len(given),
        }

    def _card(self, name: str, version: int) -> ModelCard:
        versions = self.registry.versions(name)
        entry = versions.get(version)
        if entry is None or entry.card is None:
            entry = next(e for e in versions.values() if e.card is not None)
        assert entry.card is not None
        return entry.card

    # ------------------------------------------------------------------ reports
    async def report(
        self, name: str, version: int | None, caller: str | None = None
    ) -> dict[str, Any]:
        """Live accuracy and drift of every version of a model (or of one), over every
        caller's rows or (`caller`, a key fingerprint) one caller's."""
        if version is None:
            entries = [e for e in self.registry.versions(name).values() if e.card is not None]
        else:
            entries = [self.registry.find(name, version)]
            if entries[0].card is None:
                raise Unavailable(
                    f"model {name} version {version} has no valid card: {entries[0].reason}",
                    retry_after_s=30,
                )
        self._require_store()
        reports = await self._in_thread(
            lambda: [
                _storing(self.version_report, e, caller)
                for e in sorted(entries, key=lambda e: e.version)
            ]
        )
        return {
            "model": name,
            "caller": "all" if caller is None else "this key",
            "versions": reports,
        }

    def version_report(self, entry: ModelEntry, caller: str | None = None) -> dict[str, Any]:
        """The monitoring report of one version (blocking), over every caller's rows (then it
        updates the version's Prometheus gauges) or one caller's."""
        store = self.store
        card = entry.card
        assert store is not None and card is not None
        name, version, labels = entry.name, entry.version, list(card.labels)
        predicted_rows, feedback_rows, correct = store.counts(name, version, caller)
        recent = store.recent_feedback(name, version, self.settings.accuracy_window_rows, caller)
        recent_correct = sum(true == predicted for true, predicted in recent)
        held_out = card.metrics.accuracy if isinstance(card.metrics, HeldOutMetrics) else None
        all_time = _accuracy(correct, feedback_rows, held_out)
        recent_accuracy = _accuracy(recent_correct, len(recent), held_out)
        cells = store.confusion(name, version, caller)
        matrix = [[cells.get((t, p), 0) for p in labels] for t in labels]
        drift = self._drift(entry, store, caller)
        warnings = {
            **entry.stats.warning_counts(),
            "held_out_share": card.out_of_domain.held_out_warned
            if card.out_of_domain is not None
            else None,
        }
        if not card.is_classifier:
            return {
                "version": version,
                "rows_predicted": predicted_rows,
                "rows_with_feedback": feedback_rows,
                "held_out_accuracy": None,
                "accuracy": None,
                "confusion_matrix": None,
                "regression": self._live_regression(entry, store, caller),
                "drift": drift,
                "input_warnings": warnings,
            }
        report = {
            "version": version,
            "rows_predicted": predicted_rows,
            "rows_with_feedback": feedback_rows,
            "held_out_accuracy": held_out,
            "accuracy": {
                "all_time": all_time,
                "recent": {**recent_accuracy, "window_rows": self.settings.accuracy_window_rows},
            },
            "confusion_matrix": {"labels": labels, "matrix": matrix},
            "drift": drift,
            "input_warnings": warnings,
        }
        if caller is not None:
            return report
        v = str(version)
        self.stored_rows.labels(name, v).set(predicted_rows)
        self.feedback_rows.labels(name, v).set(feedback_rows)
        for window, figures in (("all", all_time), ("recent", recent_accuracy)):
            if figures["accuracy"] is not None:
                self.live_accuracy.labels(name, v, window).set(figures["accuracy"])
        self.below_held_out.labels(name, v).set(int(recent_accuracy["below_held_out"]))
        for result in drift["statistics"]:
            stat = result["statistic"]
            self.drift_score.labels(name, v, stat).set(result["score"])
            self.drift_p_value.labels(name, v, stat).set(result["p_value"])
            self.drift_flag.labels(name, v, stat).set(int(result["flag"]))
        return report

    def _live_regression(
        self, entry: ModelEntry, store: Store, caller: str | None
    ) -> dict[str, Any]:
        """MAE, RMSE and R² over the newest rows with feedback (a regressor's)."""
        assert entry.card is not None
        limit = self.settings.accuracy_window_rows
        pairs = store.recent_truths(entry.name, entry.version, limit, caller)
        held = entry.card.metrics
        figures: dict[str, Any] = {
            "rows": len(pairs),
            "window_rows": limit,
            "held_out": {"mae": held.mae, "rmse": held.rmse, "r2": held.r2}
            if isinstance(held, RegressionMetrics)
            else None,
            **regression_figures(
                np.array([np.frombuffer(p, dtype=np.float32) for p, _ in pairs]),
                np.array([json.loads(t) for _, t in pairs], dtype=np.float64),
            ),
        }
        return figures

    def _drift(self, entry: ModelEntry, store: Store, caller: str | None) -> dict[str, Any]:
        settings = self.settings
        profile = self.profile(entry)
        window = store.recent_rows(entry.name, entry.version, settings.drift_window_rows, caller)
        out: dict[str, Any] = {
            "window_rows": settings.drift_window_rows,
            "rows": len(window),
            "distinct_rows": 0,
            "profile": profile is not None,
            "flagged": False,
            "statistics": [],
        }
        if profile is None:
            out["note"] = (
                "this version's artifact has no reference profile (profile.json): run "
                "python -m training profile on it to enable drift detection"
            )
            return out
        computer = self.computer(entry)
        names = computer.names
        stats = np.frombuffer(b"".join(row[0] for row in window), dtype=np.float64)
        stats = stats.reshape(len(window), len(names))
        # Identical inputs count once: a client re-sending the same rows (retries, a popular
        # item) repeats one observation, and counting it again would make the tests as sure
        # as if it were many independent ones.
        keep = np.sort(np.unique(stats, axis=0, return_index=True)[1])
        stats = stats[keep]
        labels = [window[i][1] for i in keep]
        out["distinct_rows"] = len(keep)
        if len(keep) < settings.drift_min_rows:
            out["note"] = (
                f"drift is tested from {settings.drift_min_rows} distinct stored rows; "
                f"{len(keep)} so far"
            )
            return out
        tests = len(profile.statistics)
        alpha = settings.drift_alpha / max(1, tests)
        results: list[DriftResult] = []
        for index, stat in enumerate(names):
            reference = profile.statistics.get(stat)
            if isinstance(reference, CategoricalReference):  # a table's string/boolean feature
                results.append(
                    categorical_drift(
                        stat,
                        category_names(stats[:, index], reference),
                        reference,
                        alpha=alpha,
                        psi_threshold=settings.drift_psi_threshold,
                    )
                )
            elif isinstance(reference, ContinuousReference):
                column = stats[:, index]
                results.append(
                    continuous_drift(
                        stat,
                        column[np.isfinite(column)],  # a missing value is not a number
                        reference,
                        alpha=alpha,
                        psi_threshold=settings.drift_psi_threshold,
                    )
                )
        label_reference = profile.statistics.get(PREDICTED_LABEL)
        if isinstance(label_reference, CategoricalReference):
            results.append(
                categorical_drift(
                    PREDICTED_LABEL,
                    labels,
                    label_reference,
                    alpha=alpha,
                    psi_threshold=settings.drift_psi_threshold,
                )
            )
        out["statistics"] = [
            {
                "statistic": r.statistic,
                "kind": r.kind,
                "test": r.test,
                "score": round(r.score, 6),
                "p_value": float(f"{r.p_value:.6g}"),
                "window_rows": r.window_rows,
                "flag": r.flag,
            }
            for r in results
        ]
        out["flagged"] = any(r.flag for r in results)
        return out

    def profile(self, entry: ModelEntry) -> Profile | None:
        """The version's reference profile (read once), None when its card names none."""
        key = (entry.name, entry.version)
        with self._lock:
            if key in self._profiles:
                return self._profiles[key]
        card = entry.card
        profile: Profile | None = None
        profile_file = getattr(card, "profile_file", None)
        if card is not None and profile_file:
            try:
                profile = Profile.model_validate_json((entry.folder / profile_file).read_bytes())
            except Exception as exc:  # noqa: BLE001 - drift off for this version, logged
                log.error(
                    "%s/%s: the reference profile is unreadable: %s",
                    entry.name,
                    entry.version,
                    _describe(exc),
                )
        with self._lock:
            self._profiles[key] = profile
        return profile

    def _pruned(self, rows: int) -> None:
        self.deleted_rows.inc(rows)
        now = time.monotonic()
        if now - self._pruned_logged_at >= PRUNE_LOG_INTERVAL_S:
            self._pruned_logged_at = now
            log.warning(
                "prediction store: %d oldest rows deleted to stay within its byte budget "
                "(SYNERGY_STORE_MAX_BYTES) or to make room on a full disk "
                "(synergy_monitoring_deleted_rows_total counts them all)",
                rows,
            )

    def _check_file(self, store: Store) -> None:
        """A deleted or replaced SQLite file: say so and use a new one, rather than answer
        from (or write feedback to) a file that is gone."""
        if store.file_replaced():
            log.error(
                "the prediction store's SQLite file was deleted or replaced: the rows it held "
                "are gone; continuing with a new file"
            )
            store.reopen()

    def housekeeping(self) -> None:
        """Retention, then refresh the Prometheus gauges of every version (writer thread)."""
        store = self.store
        if store is None:
            return
        settings = self.settings
        self._check_file(store)
        retention = (
            settings.store_retention_days * 86400 if settings.store_retention_days else None,
            settings.store_max_rows,
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
            if entry.card is not None:
                self.version_report(entry)

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


def _storing(function: Callable[..., T], *args: Any) -> T:
    """Call a store method; a database error (a full disk, a deleted or locked file, a lost
    connection) is a 503 that says so, never a 500 (reserved for a model that raised)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return function(*args)
    except SQLAlchemyError as exc:
        log.error("prediction store: %s", _describe(exc))
        full = is_disk_full(exc)
        raise Unavailable(
            "the prediction store cannot "
            + ("write: its disk is full" if full else "be used right now")
            + "; retry later (the server log says why)",
            retry_after_s=30,
        ) from None


def _open_store(url: str) -> Store:
    store = Store(url)
    store.migrate()
    return store


def regression_figures(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE and R² (averaged over targets) of (N, T) predictions against truths; None
    where undefined (no rows; R² with fewer than 2 rows or a constant truth)."""
    if len(truth) == 0:
        return {"mae": None, "rmse": None, "r2": None}
    error = predicted.reshape(truth.shape) - truth
    mae = float(np.abs(error).mean())
    rmse = float(np.sqrt((error**2).mean()))
    spread = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    r2 = (
        float(np.mean(1.0 - (error**2).sum(axis=0) / spread))
        if len(truth) >= 2 and (spread > 0).all()
        else None
    )
    return {
        "mae": round(mae, 6),
        "rmse": round(rmse, 6),
        "r2": None if r2 is None else round(r2, 6),
    }


def _accuracy(correct: int, total: int, held_out: float | None) -> dict[str, Any]:
    low, high = wilson_interval(correct, total)
    return {
        "rows": total,
        "correct": correct,
        "accuracy": round(correct / total, 6) if total else None,
        "interval_95": [round(low, 6), round(high, 6)],
        "below_held_out": bool(total and held_out is not None and high < held_out),
    }


def _describe(exc: BaseException) -> str:
    # The database URL may hold a password: name the failure, not the connection string.
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
