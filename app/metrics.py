"""Prometheus metrics (one registry per app, no global state) and live per-model stats."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from app.series import ServingSeries


class Metrics(ServingSeries):
    """The app's Prometheus registry (process, platform and GC collectors included) with the
    serving series (`app.series.ServingSeries`); monitoring, promotion and explanations add
    theirs (also declared in `app.series`) to the same registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        super().__init__(self.registry)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything above."""
        return generate_latest(self.registry)

    def batch_observer(
        self, model: str, version: int, stats: ServingStats | None = None
    ) -> BatcherMetrics:
        """The observer one batcher reports to; with `stats`, it also counts the version's
        executions there (Triton's statistics)."""
        labels = (model, str(version))
        return BatcherMetrics(
            self.batch_size.labels(*labels),
            self.inference.labels(*labels),
            self.queue_wait.labels(*labels),
            self.batch_failures.labels(*labels),
            stats.execution if stats is not None else None,
        )


@dataclass
class BatcherMetrics:
    """`app.batching.BatchObserver` backed by Prometheus children (labels bound once)."""

    batch_size: Histogram
    inference: Histogram
    queue_wait: Histogram
    failures: Counter
    execution: ExecutionStats | None = None

    def batch_done(self, rows: int, inference_s: float, failed: bool) -> None:
        self.batch_size.observe(rows)
        self.inference.observe(inference_s)
        if failed:
            self.failures.inc()
        elif self.execution is not None:
            self.execution.batch_done(rows, inference_s)

    def rows_started(
        self,
        queue_wait_s: Sequence[float],
        shadow_wait_s: Sequence[float] = (),
        shadow_rows: int = 0,
    ) -> None:
        for wait in queue_wait_s:
            self.queue_wait.observe(wait)
        if self.execution is not None:
            self.execution.rows_started(queue_wait_s, shadow_wait_s, shadow_rows)


@dataclass
class ExecutionStats:
    """What one version's batcher did, since the process started: Triton's statistics
    (`GET /v2/models/{name}/stats`).

    Written by the version's one worker thread only (a few adds per batch, no lock); read on
    the event loop, where a snapshot may be one batch behind but every number is whole.
    Durations are seconds here; the statistics endpoint reports nanoseconds.
    """

    # Successful model calls (batches) and the rows they computed.
    executions: int = 0
    rows: int = 0
    # Request segments that entered a batch (a request larger than a batch counts once per
    # batch it is in), and the seconds they waited in the queue.
    queued: int = 0
    queue_s: float = 0.0
    # Per request segment of a successful batch, its batch's compute time (Triton's
    # convention: every request of a batch reports the whole batch's duration).
    computed: int = 0
    compute_s: float = 0.0
    # Successful batches by size: size -> [count, seconds].
    by_batch_size: dict[int, list[float]] = field(default_factory=dict)
    # time.time() when the last batch finished; 0: never.
    last_inference_s: float = 0.0
    # Shadow copies of another version's requests, counted apart from everything above
    # (which is the version's own requests only): segments queued and computed, their
    # seconds, and their rows.
    shadow_queued: int = 0
    shadow_queue_s: float = 0.0
    shadow_computed: int = 0
    shadow_compute_s: float = 0.0
    shadow_rows: int = 0
    _segments: int = 0
    _shadow_segments: int = 0
    _shadow_batch_rows: int = 0

    def rows_started(
        self,
        queue_wait_s: Sequence[float],
        shadow_wait_s: Sequence[float] = (),
        shadow_rows: int = 0,
    ) -> None:
        """A batch starts: its own request segments waited `queue_wait_s` seconds each, its
        shadow segments (`shadow_rows` rows) `shadow_wait_s`."""
        self._segments = len(queue_wait_s)
        self.queued += self._segments
        self.queue_s += sum(queue_wait_s)
        self._shadow_segments = len(shadow_wait_s)
        self._shadow_batch_rows = shadow_rows
        if shadow_wait_s:
            self.shadow_queued += self._shadow_segments
            self.shadow_queue_s += sum(shadow_wait_s)

    def batch_done(self, rows: int, inference_s: float) -> None:
        """The batch just started computed `rows` rows (shadow rows included) in
        `inference_s` seconds. A batch of shadow copies only is not an execution of the
        version's own (Triton's execution and inference counts)."""
        batch_size = rows
        if self._shadow_segments:
            self.shadow_computed += self._shadow_segments
            self.shadow_compute_s += inference_s * self._shadow_segments
            self.shadow_rows += self._shadow_batch_rows
            rows -= self._shadow_batch_rows
            if not self._segments:
                return
        self.executions += 1
        self.rows += rows
        self.computed += self._segments
        self.compute_s += inference_s * self._segments
        size = self.by_batch_size.get(batch_size)
        if size is None:
            # A new key: a whole new list, so a reader copying the dict sees it complete.
            self.by_batch_size[batch_size] = [1, inference_s]
        else:
            size[0] += 1
            size[1] += inference_s
        self.last_inference_s = time.time()

    def batch_sizes(self) -> list[tuple[int, int, float]]:
        """(batch size, executions, seconds), by size (safe on the event loop)."""
        return sorted((size, int(c), s) for size, (c, s) in list(self.by_batch_size.items()))


@dataclass
class ServingStats:
    """Live numbers for `GET /v1/models/{name}/metrics`, since the process started.

    Latency percentiles come from the most recent requests (a bounded window), exact rather
    than bucketed; Prometheus keeps the long-run histograms.
    """

    window: int = 10_000
    requests: int = 0
    errors: int = 0
    errors_by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    # Seconds spent on successful / failed requests (receive to response), for Triton's
    # success and fail durations.
    success_s: float = 0.0
    fail_s: float = 0.0
    labels: collections.Counter[str] = field(default_factory=collections.Counter)
    execution: ExecutionStats = field(default_factory=ExecutionStats)
    # Input warnings by code, and predictions with at least one (worker threads; the lock).
    warnings: collections.Counter[str] = field(default_factory=collections.Counter)
    warned_rows: int = 0
    _latencies_ms: collections.deque[float] = field(default_factory=collections.deque)
    # Labels are counted on model worker threads and read on the event loop.
    _labels_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._latencies_ms = collections.deque(maxlen=self.window)

    def record_request(self, status: int, latency_s: float) -> None:
        """Count one finished request."""
        self.requests += 1
        if status >= 400:
            self.errors += 1
            self.errors_by_status[status] += 1
            self.fail_s += latency_s
        else:
            self._latencies_ms.append(latency_s * 1000.0)
            self.success_s += latency_s

    def record_labels(self, counts: collections.Counter[str]) -> None:
        """Add a batch's predicted-label counts (safe from any thread)."""
        with self._labels_lock:
            self.labels.update(counts)

    def record_warnings(self, codes: collections.Counter[str], warned_rows: int) -> None:
        """Add a batch's input warnings (safe from any thread)."""
        if warned_rows:
            with self._labels_lock:
                self.warnings.update(codes)
                self.warned_rows += warned_rows

    def warning_counts(self) -> dict[str, Any]:
        """Predictions with input warnings since start-up: how many, their share, by code."""
        with self._labels_lock:
            total = sum(self.labels.values())
            return {
                "warned_predictions": self.warned_rows,
                "share": round(self.warned_rows / total, 4) if total else None,
                "by_code": dict(sorted(self.warnings.items())),
            }

    def snapshot(self) -> dict[str, object]:
        """Counts, latency percentiles (ms) and the predicted-label distribution."""
        latencies = np.fromiter(self._latencies_ms, dtype=np.float64)
        percentiles = (
            dict(
                zip(
                    ("p50", "p90", "p99"),
                    np.round(np.percentile(latencies, [50, 90, 99]), 3).tolist(),
                    strict=True,
                )
            )
            if latencies.size
            else {"p50": None, "p90": None, "p99": None}
        )
        with self._labels_lock:
            labels = dict(self.labels)
        total = sum(labels.values())
        return {
            "requests": self.requests,
            "errors": self.errors,
            "errors_by_status": {str(k): v for k, v in sorted(self.errors_by_status.items())},
            "latency_ms": {**percentiles, "window": int(latencies.size)},
            "predicted_labels": {
                label: {"count": count, "share": round(count / total, 4)}
                for label, count in sorted(labels.items())
            },
            "input_warnings": self.warning_counts(),
        }
