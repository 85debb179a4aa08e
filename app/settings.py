"""Service settings: read once from the environment (prefix `SYNERGY_`), then passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class BatchingSettings(BaseModel):
    """Micro-batching knobs of one model (see `app.batching`)."""

    max_batch_size: int = Field(default=64, ge=1, le=4096)
    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    max_queue_rows: int = Field(default=4096, ge=1)
    max_queue_wait_ms: float = Field(default=50.0, ge=0)

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> BatchingSettings:
        if self.max_queue_rows < self.max_batch_size:
            raise ValueError("max_queue_rows must be at least max_batch_size")
        return self


class ConfigError(ValueError):
    """A setting that cannot work; `python -m app` prints it as one line and exits 2."""


def _split_list(value: object) -> object:
    """Accept `a,b,c` as well as a JSON list for list settings given in the environment.

    Items are stripped and blank ones dropped in both forms, so `[" k1 "]` means `k1`.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            value = json.loads(text)
        else:
            return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return [
            item.strip() if isinstance(item, str) else item
            for item in value
            if not (isinstance(item, str) and not item.strip())
        ]
    return value


class Settings(BaseSettings):
    """All knobs of the service. Environment variables are `SYNERGY_<FIELD>` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="SYNERGY_", extra="ignore", frozen=True)

    # Where and how to serve.
    models_dir: Path = Path("models")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_requests: bool = Field(default=True, description="One log line per request.")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="auto: readable text lines when stdout is a terminal, JSON lines otherwise "
        "(containers, pipes, log collectors); json; text.",
    )
    log_health_requests: bool = Field(
        default=False,
        description="Also log each /health/* and /v2/health/* request (probes; they are "
        "always counted in /metrics).",
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's OpenTelemetry traces/metrics/logs (needs a "
        "configured OpenTelemetry SDK); Prometheus /metrics is always on.",
    )

    # Input limits.
    max_instances: int = Field(default=1000, ge=1, description="Instances per predict request.")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Decoded pixels of one image. A digit needs 28x28; 4 MP is a 2000x2000 PNG, and a JPEG of
    # any size up to 16000x16000 decodes at reduced size (1/8 a side at most) within it.
    max_image_pixels: int = Field(default=4_000_000, ge=784)
    # Decoded pixels of all the images of one request (a V2 request can carry hundreds).
    max_request_image_pixels: int = Field(default=32_000_000, ge=784)
    max_text_chars: int = Field(default=50_000, ge=1)

    # Batching: global defaults plus per-model overrides, e.g.
    # SYNERGY_MODEL_BATCHING='{"mnist-cnn": {"max_batch_size": 128}}'.
    max_batch_size: int = Field(default=64, ge=1, le=4096)
    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    # Admission follows the wait a request can expect (rows ahead over the model's measured
    # throughput, see app.batching): up to max_queue_wait_ms for the rows of others (or its
    # own compute time, when longer), within its deadline; past that, a fast 503 beats a slow
    # answer. max_queue_rows only bounds the memory queued rows take (4096 MNIST rows: 13 MB).
    max_queue_rows: int = Field(default=4096, ge=1)
    max_queue_wait_ms: float = Field(default=50.0, ge=0)
    model_batching: dict[str, BatchingSettings] = Field(default_factory=dict)
    request_timeout_ms: float = Field(default=10_000, gt=0, description="Deadline -> 504.")

    # Explanations (`:explain`, see app.explain): one worker thread of their own, so they never
    # take the predictions' batchers; each explanation costs hundreds of model rows.
    explain_max_instances: int = Field(
        default=16, ge=1, description="Instances per explain request; 413 above."
    )
    explain_timeout_ms: float = Field(
        default=30_000, gt=0, description="Deadline of an explain request (from arrival) -> 504."
    )
    explain_max_queue: int = Field(
        default=4, ge=1, description="Explain requests waiting for the worker; 503 above."
    )
    explain_max_per_caller: int = Field(
        default=2,
        ge=1,
        description="Explain requests one caller (API key, or client address without keys) may "
        "have waiting or running; 503 above, so one caller cannot take the worker from others.",
    )
    explain_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="OS nice value of the explanation thread, so predictions win the CPU.",
    )
    explain_max_yield_ms: float = Field(
        default=20,
        ge=0,
        description="Between chunks of an explanation, how long it waits while predictions "
        "are queued or computing (0 = never).",
    )
    explain_exact_max_features: int = Field(
        default=10, ge=1, le=14, description="Exact Shapley values up to this many features."
    )
    explain_permutations: int = Field(
        default=32, ge=1, description="Tabular sampled Shapley: permutations (each + reverse)."
    )
    explain_text_permutations: int = Field(
        default=8, ge=1, description="Text sampled Shapley: permutations (each + reverse)."
    )
    explain_ig_steps: int = Field(
        default=32, ge=2, description="Integrated gradients: first trapezoid grid."
    )
    explain_ig_max_steps: int = Field(
        default=1024, ge=2, description="Integrated gradients: finest grid when refining."
    )

    # Compute.
    inference_threads: int = Field(
        default=0, ge=0, description="TensorFlow intra-op threads; 0 = one per CPU core."
    )
    warmup: bool = True
    # A model saved with another scikit-learn/Keras major.minor than the server runs fails to
    # load (cross-version loading is unsupported: crashes or silent mis-predictions); true
    # serves it anyway, on purpose (the load-time replay of its card example still applies).
    allow_library_version_mismatch: bool = False
    # Threads that decode images and parse large bodies, off the event loop. A bounded pool:
    # concurrent uploads queue rather than all decoding (and holding memory) at once.
    decode_threads: int = Field(default=0, ge=0, description="0 = one per CPU core, at most 4.")

    # Connections (enforced by `app.server.BoundedHttpProtocol`). Production HTTP servers bound
    # these too (nginx: client_header_timeout, large_client_header_buffers, worker_connections).
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open client connections; more are closed at once (load balancers retry "
        "them on another replica).",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Request line plus headers of one request; 431 above.",
    )
    max_header_count: int = Field(
        default=100, ge=8, description="Headers in one request; 431 above."
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="From a new connection (or the first byte of the next request on a "
        "kept-alive one) to the end of the request's headers; 408 and close after.",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="From the end of the headers to the end of the body (8 MiB in 30 s is "
        "2.2 Mbit/s); 408 and close after.",
    )
    # Longer than the idle timeout of common load balancers (60 s), so the
    # balancer, not the server, closes idle keep-alive connections: otherwise a request sent
    # just as the server closes one fails with a 502 at the balancer.
    keep_alive_timeout_s: int = Field(default=75, ge=1)

    # Open Inference Protocol over gRPC (app.rpc), in the same process and event loop. Its
    # largest message is max_body_bytes, the REST body limit.
    grpc_port: int = Field(
        default=8081, ge=0, le=65535, description="gRPC port (on SYNERGY_HOST); 0 = no gRPC."
    )
    grpc_max_concurrent_streams: int = Field(
        default=100, ge=1, description="Concurrent calls on one gRPC connection (HTTP/2)."
    )
    grpc_keepalive_time_s: float = Field(
        default=60.0,
        gt=0,
        description="The server pings an idle gRPC connection this often, and closes it when "
        "no answer comes within grpc_keepalive_timeout_s.",
    )
    grpc_keepalive_timeout_s: float = Field(default=20.0, gt=0)
    # gRPC's default (5 min) sends GOAWAY "too_many_pings" to clients that keep connections
    # alive more often (grpc-go and Envoy are often set to 10-30 s).
    grpc_min_ping_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="Shortest interval between a client's keepalive pings (with or without "
        "calls in flight) before the server answers GOAWAY.",
    )

    # Shutdown.
    shutdown_grace_period_s: float = Field(
        default=30.0,
        ge=0,
        description="After SIGTERM, requests in flight may finish this long; then the rest get "
        "503 and the process exits (within about 1 s more).",
    )

    # Model repository. TF Serving's default policy serves the latest 1 version; 2 keeps the
    # previous version answering clients that pin it (and a fallback if the newest fails to
    # load) through a rollout, while a folder of hundreds of versions costs two runtimes.
    max_versions_per_model: int = Field(
        default=2,
        ge=1,
        description="Version policy 'latest N': only the N highest versions of a model are "
        "loaded and served.",
    )
    # A scan stats each model's version folders and reads config.json and new cards only
    # (about a millisecond for this repository), so 10 s costs nothing measurable, and a new
    # version starts loading within 10 s of its folder appearing; loading it takes longer.
    # TF Serving polls every 1 s, Triton's poll mode every 15 s.
    model_poll_s: float = Field(
        default=10.0,
        ge=0,
        description="Rescan the models dir every this many seconds for new, changed and "
        "removed models and versions (0: never; the repository API still loads).",
    )

    # Access control.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_keys_file: Path | None = None
    # Admin keys (docs/security.md): model control and every other operation that changes
    # the server's state for everyone. An admin key also works wherever a prediction key does.
    admin_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    admin_api_keys_file: Path | None = None
    control_api: bool | None = Field(
        default=None,
        description="The model-control API (/v2/repository/models/*/load|unload): unset = on "
        "exactly when an admin key is configured; true without any key opens it to everyone "
        "(development only).",
    )
    protect_metrics: bool = False
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Monitoring (app.monitoring): prediction store, feedback, live accuracy, drift, payload log.
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
    # Promotion (app.monitoring.promotion): comparisons and decisions from shadow and canary.
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
        description="Newest rows per version (or shadow pair) a comparison reads: its cost "
        "does not grow with history.",
    )
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

    # Health probes on a listener of their own (docs/security.md): a flood of idle
    # connections that fills max_connections on the main port cannot make them fail.
    probe_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the probe listener (GET /health/live, /health/ready only); unset "
        "= none. The shipped manifests use 8082.",
    )

    @field_validator("api_keys", "admin_api_keys", "cors_origins", mode="before")
    @classmethod
    def _lists_from_env(cls, value: object) -> object:
        return _split_list(value)

    @model_validator(mode="after")
    def _keys_set_means_keys_required(self) -> Settings:
        # A keys setting that is present but empty (a templating slip, an empty Secret) must
        # not silently turn authentication off.
        if "api_keys" in self.model_fields_set and not self.api_keys:
            raise ValueError(
                "SYNERGY_API_KEYS is set but holds no key; give at least one key, or unset it "
                "to serve without authentication"
            )
        if "admin_api_keys" in self.model_fields_set and not self.admin_api_keys:
            raise ValueError(
                "SYNERGY_ADMIN_API_KEYS is set but holds no key; give at least one key, or unset "
                "it (the model-control API is then off)"
            )
        return self

    def control_api_on(self) -> bool:
        """Whether the model-control API answers: the setting, else whether an admin key is
        configured."""
        if self.control_api is not None:
            return self.control_api
        return bool(self.admin_api_keys or self.admin_api_keys_file)

    def batching_for(self, model_name: str) -> BatchingSettings:
        """The batching knobs of one model: its override, else the global defaults."""
        override = self.model_batching.get(model_name)
        if override is not None:
            return override
        return BatchingSettings(
            max_batch_size=self.max_batch_size,
            max_batch_wait_ms=self.max_batch_wait_ms,
            max_queue_rows=max(self.max_queue_rows, self.max_batch_size),
            max_queue_wait_ms=self.max_queue_wait_ms,
        )

    def resolved_decode_threads(self) -> int:
        """Decoding threads: the setting, else one per core this process may use (at most 4)."""
        if self.decode_threads:
            return self.decode_threads
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return min(cores, 4)

    def resolved_inference_threads(self) -> int:
        """Threads for one model's forward pass: the setting, else the cores we may use."""
        if self.inference_threads:
            return self.inference_threads
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1
