"""The Prometheus series of monitoring, promotion and explanations, declared once each on
the app's registry (`app.metrics.Metrics` holds the serving ones). A component takes its
series object; nothing else calls `Counter(...)`, `Gauge(...)` or `Histogram(...)`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

EXPLAIN_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class MonitoringSeries:
    """Prediction store, feedback, live accuracy and drift (app.monitoring)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter(
            "synergy_monitoring_dropped_rows_total",
            "Predicted rows not stored (queue full or database error) or not payload-logged.",
            ["sink"],
            registry=registry,
        )
        self.omitted_inputs = Counter(
            "synergy_monitoring_inputs_omitted_total",
            "Stored rows whose compact input was over SYNERGY_STORE_MAX_ROW_BYTES (their "
            "statistics and prediction are stored, the input is not).",
            registry=registry,
        )
        self.deleted_rows = Counter(
            "synergy_monitoring_deleted_rows_total",
            "Stored rows deleted before their retention: over the byte budget "
            "(SYNERGY_STORE_MAX_BYTES) or to make room on a full disk.",
            registry=registry,
        )
        self.feedback_rows = Gauge(
            "synergy_feedback_rows",
            "Stored rows with a true label from feedback.",
            ["model", "version"],
            registry=registry,
        )
        self.stored_rows = Gauge(
            "synergy_monitoring_rows",
            "Stored predicted rows (within retention).",
            ["model", "version"],
            registry=registry,
        )
        self.live_accuracy = Gauge(
            "synergy_live_accuracy",
            "Accuracy on rows with feedback (window: all or recent).",
            ["model", "version", "window"],
            registry=registry,
        )
        self.below_held_out = Gauge(
            "synergy_live_accuracy_below_held_out",
            "1 when the recent live accuracy's Wilson 95% interval lies below the card's "
            "held-out accuracy.",
            ["model", "version"],
            registry=registry,
        )
        self.drift_score = Gauge(
            "synergy_drift_score",
            "PSI of the recent window against the training profile.",
            ["model", "version", "statistic"],
            registry=registry,
        )
        self.drift_p_value = Gauge(
            "synergy_drift_p_value",
            "KS (continuous) or chi-squared (categorical) p-value of the recent window.",
            ["model", "version", "statistic"],
            registry=registry,
        )
        self.drift_flag = Gauge(
            "synergy_drift_flag",
            "1 when the statistic drifted (p-value and PSI past their thresholds).",
            ["model", "version", "statistic"],
            registry=registry,
        )


class PromotionSeries:
    """Promotion decisions and the shadow answers kept for comparisons."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions_total = Counter(
            "synergy_promotion_decisions_total",
            "Promotion decisions this replica recorded (promote, rollback, reset).",
            ["model", "action", "decided_by"],
            registry=registry,
        )
        self.shadow_rows_dropped = Counter(
            "synergy_promotion_shadow_rows_dropped_total",
            "Shadow answers not stored for comparisons (queue full or database error).",
            registry=registry,
        )


class ExplainSeries:
    """Prometheus series of explanations, on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "synergy_explanations_total",
            "Explanation requests by model, version and status (ok or the HTTP status).",
            ["model", "version", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "synergy_explanation_duration_seconds",
            "Time to explain one request on the explanation worker (queueing excluded).",
            ["model"],
            buckets=EXPLAIN_LATENCY_BUCKETS_S,
            registry=registry,
        )
