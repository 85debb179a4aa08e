"""Every Prometheus series the service exports, each declared once here, on the app's
registry (`app.metrics.Metrics` makes it): serving, monitoring, promotion and explanations.
A component takes its series object; nothing else calls `Counter(...)`, `Gauge(...)` or
`Histogram(...)`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.request_series import EventLoopCounter, EventLoopHistogram, EventLoopSeries

# Fine enough to read a p99 anywhere between 1 ms and 5 s.
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


EXPLAIN_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServingSeries:
    """Requests, batches, the repository, shadows and predicted labels (app.core, app.batching,
    app.repository, app.middleware)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        # Updated per request on the event loop: see app.request_series.
        self.requests = EventLoopCounter(
            "synergy_requests_total",
            "Requests by model, version, route label (the config label or traffic key "
            "that chose the version; empty when none did), endpoint, protocol (http, grpc) and "
            "status (HTTP; a gRPC call's code as the HTTP status it stands for).",
            ["model", "version", "label", "endpoint", "protocol", "status"],
        )
        self.request_latency = EventLoopHistogram(
            "synergy_request_duration_seconds",
            "Request latency, receive to response, by model, version, route label, endpoint "
            "and protocol (http, grpc).",
            ["model", "version", "label", "endpoint", "protocol"],
            buckets=LATENCY_BUCKETS_S,
        )
        EventLoopSeries(r, self.requests, self.request_latency)
        self.in_flight = Gauge(
            "synergy_requests_in_flight", "Requests (HTTP and gRPC) being handled now.", registry=r
        )
        self.batch_size = Histogram(
            "synergy_batch_size_rows",
            "Rows per model call.",
            ["model", "version"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "synergy_queue_wait_seconds",
            "Time a request waited in the batch queue.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.inference = Histogram(
            "synergy_inference_duration_seconds",
            "Time of one batch: featurisation and forward pass.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_failures = Counter(
            "synergy_batch_failures_total",
            "Batches whose model call raised.",
            ["model", "version"],
            registry=r,
        )
        self.queue_rows = Gauge(
            "synergy_queue_rows",
            "Rows waiting in the batch queue.",
            ["model", "version"],
            registry=r,
        )
        self.model_ready = Gauge(
            "synergy_model_ready",
            "1 when the model version is loaded and warmed up.",
            ["model", "version"],
            registry=r,
        )
        self.model_load_failures = Counter(
            "synergy_model_load_failures_total",
            "Model versions that failed verification, loading, warm-up or the card replay "
            "(the reason is in the model listing and the log).",
            ["model", "version"],
            registry=r,
        )
        self.config_valid = Gauge(
            "synergy_model_config_valid",
            "0 while the model's config.json is invalid (the previous config stays in force).",
            ["model"],
            registry=r,
        )
        self.config_errors = Counter(
            "synergy_model_config_errors_total",
            "Times a changed config.json of the model was refused.",
            ["model"],
            registry=r,
        )
        self.repository_scan = Histogram(
            "synergy_repository_scan_seconds",
            "Time of one scan of the models dir.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=r,
        )
        self.shadow_rows = Counter(
            "synergy_shadow_rows_total",
            "Rows a shadow version predicted from copies of its model's traffic.",
            ["model", "version"],
            registry=r,
        )
        self.shadow_disagreements = Counter(
            "synergy_shadow_disagreements_total",
            "Shadow rows whose label differs from the primary's answer (the disagreement "
            "rate is this over synergy_shadow_rows_total).",
            ["model", "version"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "synergy_shadow_dropped_total",
            "Copies of requests the shadow version did not predict (busy, failed, too late).",
            ["model", "version"],
            registry=r,
        )
        self.predictions = Counter(
            "synergy_predictions_total",
            "Predicted labels.",
            ["model", "version", "label"],
            registry=r,
        )
        self.log_lines_dropped = Counter(
            "synergy_log_lines_dropped_total",
            "Access log lines dropped because stdout was not read fast enough (the server "
            "never waits for its log reader; a warning line in the log marks each gap).",
            registry=r,
        )
        self.input_warnings = Counter(
            "synergy_input_warnings_total",
            "Predictions warned that their input is unlike the training data, by warning code "
            "(see docs/warnings.md); a rising rate against synergy_predictions_total is drift.",
            ["model", "version", "code"],
            registry=r,
        )


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
