"""Shadow answers on their way to the comparisons: a bounded queue of (primary, shadow) label
pairs filled on the event loop and flushed to the store by the promoter's thread, and each
shadow's recent inference times."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING

from app.monitoring.evidence import Evidence, ShadowRow
from app.series import PromotionSeries

if TYPE_CHECKING:
    from app.core import ShadowEvent

log = logging.getLogger(__name__)

# Shadow rows waiting for the next flush; more are dropped (a slow database never grows
# memory). The shadow's answers are evidence, not records: a dropped row is a smaller sample.
MAX_PENDING_SHADOW_ROWS = 50_000
SHADOW_LATENCY_WINDOW = 10_000


class ShadowRows:
    """The shadow rows waiting to be stored (dropped and counted past
    `MAX_PENDING_SHADOW_ROWS`), and the newest `SHADOW_LATENCY_WINDOW` inference times (ms)
    of each (model, shadow version)."""

    def __init__(self, series: PromotionSeries) -> None:
        self.series = series
        self.latencies_ms: dict[tuple[str, int], collections.deque[float]] = {}
        self._pending: collections.deque[ShadowRow] = collections.deque()
        self._lock = threading.Lock()

    def record(self, event: ShadowEvent, stored: bool) -> None:
        """Queue a shadow copy's rows (on the loop): a deque append; only its latency when
        nothing is `stored` (no promotion tables)."""
        if event.latency_s is not None:
            window = self.latencies_ms.get((event.model, event.shadow_version))
            if window is None:
                window = collections.deque(maxlen=SHADOW_LATENCY_WINDOW)
                self.latencies_ms[(event.model, event.shadow_version)] = window
            window.append(event.latency_s * 1000.0)
        if not stored:
            return
        now = time.time()
        with self._lock:
            if len(self._pending) + len(event.shadow_labels) > MAX_PENDING_SHADOW_ROWS:
                self.series.shadow_rows_dropped.inc(len(event.shadow_labels))
                return
            for index, (primary, shadow) in enumerate(
                zip(event.primary_labels, event.shadow_labels, strict=True)
            ):
                self._pending.append(
                    (
                        event.model,
                        event.request_id[:128],
                        index,
                        event.primary_version,
                        event.shadow_version,
                        primary,
                        shadow,
                        now,
                    )
                )

    def flush(self, evidence: Evidence) -> None:
        """Store the queued rows (blocking); a failure drops and counts them."""
        with self._lock:
            rows = list(self._pending)
            self._pending.clear()
        if not rows:
            return
        try:
            evidence.insert_shadow_rows(rows)
        except Exception as exc:  # noqa: BLE001 - counted: a smaller sample, not an outage
            log.error("storing %d shadow rows failed: %s", len(rows), type(exc).__name__)
            self.series.shadow_rows_dropped.inc(len(rows))
