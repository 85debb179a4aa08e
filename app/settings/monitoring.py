"""The settings groups of monitoring (app.monitoring): the prediction store, live accuracy
and drift, promotion and the payload log."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from app.settings.groups import _Group


class StoreSettings(_Group):
    """The prediction store (app.monitoring.store) and its writer."""

    store_dir: Path = Field(
        default=Path("var"),
        description="Writable folder for the SQLite prediction store (monitoring.sqlite3); in "
        "the container a mounted volume (/data).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:5432/db: the prediction store on "
        "PostgreSQL (needed for several replicas); unset = SQLite in store_dir.",
    )
    store_predictions: bool = Field(
        default=True,
        description="Remember predictions (input statistics, compact inputs, probabilities) for "
        "feedback, live accuracy and drift; false = none of that, nothing written.",
    )
    store_queue_rows: int = Field(
        default=10_000,
        ge=1,
        description="Rows waiting for the writer (memory: an MNIST row is ~3 KB); more are "
        "dropped and counted.",
    )
    store_queue_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory the rows waiting for the writer may hold (arrays' bytes, texts' "
        "characters); more are dropped and counted, like over store_queue_rows.",
    )
    store_batch_rows: int = Field(default=2000, ge=1, description="Rows per insert.")
    # Rows wait up to this for their batch (fewer, larger commits cost less CPU); feedback
    # does not wait for it (it makes the writer write its request's rows at once).
    store_flush_interval_ms: float = Field(default=1000.0, gt=0, le=60_000)
    store_retention_days: float | None = Field(
        default=30.0, gt=0, description="Rows older than this are deleted; unset = kept."
    )
    store_max_rows: int | None = Field(
        default=5_000_000, ge=1, description="The newest rows kept; unset = no row limit."
    )
    store_max_bytes: int | None = Field(
        default=256 * 1024 * 1024,
        ge=1024 * 1024,
        description="Byte budget of the stored rows (SQLite: pages in use; PostgreSQL: the "
        "table with its indexes): past it the oldest rows are deleted after each write; "
        "unset = no byte limit. Keep it well under the volume's size (docs/security.md).",
    )
    store_max_row_bytes: int = Field(
        default=4096,
        ge=256,
        description="A row's compact input (a review's word ids, an image's pixels) is stored "
        "only up to this size; larger ones keep their statistics and prediction, not the "
        "input (counted in synergy_monitoring_inputs_omitted_total).",
    )


class DriftSettings(_Group):
    """Live accuracy and drift (app.monitoring), and how often their gauges refresh."""

    accuracy_window_rows: int = Field(
        default=500, ge=1, description="Newest rows with feedback in the recent accuracy."
    )
    drift_window_rows: int = Field(
        default=200, ge=10, description="Newest predicted rows compared with the profile."
    )
    drift_min_rows: int = Field(
        default=20, ge=10, description="Fewer distinct rows than this: drift is not tested yet."
    )
    drift_alpha: float = Field(
        default=0.001,
        gt=0,
        lt=1,
        description="Family-wise significance over a model's statistics (Bonferroni).",
    )
    drift_psi_threshold: float = Field(
        default=0.25, ge=0, description="PSI from which a significant shift is flagged."
    )
    monitoring_interval_s: float = Field(
        default=60.0, gt=0, description="Prometheus monitoring gauges and retention, refreshed."
    )


class PromotionSettings(_Group):
    """Promotion (app.monitoring.promotion): comparisons and decisions from shadow and canary."""

    promotion_poll_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Every this many seconds each replica stores shadow answers, follows new "
        "promotion decisions and judges candidates by config.json's promotion rules.",
    )
    promotion_window_rows: int = Field(
        default=20_000,
        ge=100,
        le=10_000_000,
        description="Rows a comparison's running tally reads from the store per query (it "
        "reads only rows new since its last poll, in batches of this many).",
    )


class PayloadLogSettings(_Group):
    """The payload log (app.monitoring.payload_log): CloudEvents of sampled requests."""

    payload_log: str = Field(
        default="off",
        description="off | stdout | a file path | an http(s) URL: CloudEvents 1.0 JSON of "
        "each sampled request and response.",
    )
    payload_log_sample: float = Field(default=1.0, ge=0, le=1)
    payload_log_queue_events: int = Field(default=10_000, ge=1)
    payload_log_queue_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        description="Memory the payload log's queue may hold (the queued requests' input "
        "rows); more are dropped and counted.",
    )
    payload_log_max_event_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="One event's JSON at most; a request event over it is written without its "
        "instances (data.instances_omitted says why).",
    )
    payload_log_max_file_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=64 * 1024,
        description="A payload-log file is rotated at this size (file -> file.1 -> ...).",
    )
    payload_log_backup_files: int = Field(
        default=3, ge=0, description="Rotated payload-log files kept (0: the file is truncated)."
    )
