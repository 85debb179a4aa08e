"""The settings groups of the service itself: serving, logging, limits, connections, gRPC,
repository, security and batching. Each field is one `SYNERGY_<FIELD>` environment variable
(see `app.settings`); a component takes only the group it reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode


class _Group(BaseModel):
    """A settings group: frozen, and (like the root) ignores keys it does not know."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)


def _split_list(value: object) -> object:
    """Accept `a,b,c` as well as a JSON list for list settings given in the environment.

    Items are stripped and blank ones dropped in both forms, so `[" k1 "]` means `k1`.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
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


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ModelBatchingSettings(_Group):
    """Micro-batching knobs of one model (see `app.batching`)."""

    # Admission follows the wait a request can expect (rows ahead over the model's measured
    # throughput, see app.batching): up to max_queue_wait_ms for the rows of others (or its
    # own compute time, when longer), within its deadline; past that, a fast 503 beats a slow
    # answer. max_queue_rows only bounds the memory queued rows take (4096 MNIST rows: 13 MB).
    max_batch_size: int = Field(default=64, ge=1, le=4096)
    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    max_queue_rows: int = Field(default=4096, ge=1)
    max_queue_wait_ms: float = Field(default=50.0, ge=0)

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> ModelBatchingSettings:
        if self.max_queue_rows < self.max_batch_size:
            raise ValueError("max_queue_rows must be at least max_batch_size")
        return self


class BatchingSettings(ModelBatchingSettings):
    """Batching: global defaults (the fields of `ModelBatchingSettings`) plus per-model
    overrides, e.g. SYNERGY_MODEL_BATCHING='{"mnist-cnn": {"max_batch_size": 128}}'."""

    model_batching: dict[str, ModelBatchingSettings] = Field(default_factory=dict)

    def _queue_holds_a_batch(self) -> BatchingSettings:  # type: ignore[override]
        # The global defaults may hold fewer queued rows than a batch: `for_model` raises the
        # queue to one batch instead of refusing to start.
        return self

    def for_model(self, model_name: str) -> ModelBatchingSettings:
        """The batching knobs of one model: its override, else the global defaults."""
        override = self.model_batching.get(model_name)
        if override is not None:
            return override
        return ModelBatchingSettings(
            max_batch_size=self.max_batch_size,
            max_batch_wait_ms=self.max_batch_wait_ms,
            max_queue_rows=max(self.max_queue_rows, self.max_batch_size),
            max_queue_wait_ms=self.max_queue_wait_ms,
        )


class ServingSettings(_Group):
    """Where and how the service listens, its deadlines and its threads."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Health probes on a listener of their own (docs/security.md): a flood of idle
    # connections that fills max_connections on the main port cannot make them fail.
    probe_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the probe listener (GET /health/live, /health/ready only); unset "
        "= none. The shipped manifests use 8082.",
    )
    request_timeout_ms: float = Field(default=10_000, gt=0, description="Deadline -> 504.")
    shutdown_grace_period_s: float = Field(
        default=30.0,
        ge=0,
        description="After SIGTERM, requests in flight may finish this long; then the rest get "
        "503 and the process exits (within about 1 s more).",
    )
    # Threads that decode images and parse large bodies, off the event loop. A bounded pool:
    # concurrent uploads queue rather than all decoding (and holding memory) at once.
    decode_threads: int = Field(default=0, ge=0, description="0 = one per CPU core, at most 4.")
    # Python's default (5 ms) lets the event loop keep the GIL that long while a model's
    # worker, the store's shipper or gRPC's poller waits to hand it a result; 1 ms measured
    # 2-7% more requests/s and 2-6% less CPU per request on all four models (bench/RESULTS.md).
    gil_switch_interval_ms: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="How long a Python thread may hold the GIL while another waits for it "
        "(sys.setswitchinterval); Python's default is 5.",
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's OpenTelemetry traces/metrics/logs (needs a "
        "configured OpenTelemetry SDK); Prometheus /metrics is always on.",
    )

    def resolved_decode_threads(self) -> int:
        """Decoding threads: the setting, else one per core this process may use (at most 4)."""
        return self.decode_threads or min(_usable_cores(), 4)


class LoggingSettings(_Group):
    """Log lines: level, format, which requests (see docs/logs.md)."""

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


class LimitsSettings(_Group):
    """Limits on one request's inputs (413 above them)."""

    max_instances: int = Field(default=1000, ge=1, description="Instances per predict request.")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Decoded pixels of one image. A digit needs 28x28; 4 MP is a 2000x2000 PNG, and a JPEG of
    # any size up to 16000x16000 decodes at reduced size (1/8 a side at most) within it.
    max_image_pixels: int = Field(default=4_000_000, ge=784)
    # Decoded pixels of all the images of one request (a V2 request can carry hundreds).
    max_request_image_pixels: int = Field(default=32_000_000, ge=784)
    max_text_chars: int = Field(default=50_000, ge=1)


class ConnectionSettings(_Group):
    """What one client connection may cost (enforced by `app.server.BoundedHttpProtocol`)."""

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


class GrpcSettings(_Group):
    """Open Inference Protocol over gRPC (app.rpc)."""

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
    # grpc.aio asks its core for one call per method at a time, through a thread and several
    # event-loop iterations per call (app.rpc.accept): 64 matches a channel's usual number of
    # calls in flight.
    grpc_accept_ahead: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="ModelInfer calls the server accepts ahead of the event loop taking them; "
        "1 = grpc.aio's own behaviour (one at a time).",
    )


class RepositorySettings(_Group):
    """The model repository: where, which versions, how they load."""

    models_dir: Path = Path("models")
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
    # A model saved with another scikit-learn/Keras major.minor than the server runs fails to
    # load (cross-version loading is unsupported: crashes or silent mis-predictions); true
    # serves it anyway, on purpose (the load-time replay of its card example still applies).
    allow_library_version_mismatch: bool = False
    inference_threads: int = Field(
        default=0, ge=0, description="TensorFlow intra-op threads; 0 = one per CPU core."
    )
    # One each: a batch's products and neighbour searches are small, and an idle OpenBLAS or
    # OpenMP thread spins for milliseconds after each call, a core taken from the event loop
    # (app.runtimes.limit_native_threads).
    blas_threads: int = Field(
        default=1,
        ge=0,
        description="BLAS threads per call (NumPy's and SciPy's OpenBLAS); 0 = the library's "
        "default, one per CPU core.",
    )
    openmp_threads: int = Field(
        default=1,
        ge=0,
        description="OpenMP threads per call (scikit-learn's neighbour searches); 0 = the "
        "library's default, one per CPU core.",
    )
    # scikit-learn's input checks cost more than a small batch's arithmetic (the calibrated
    # k-NN: 1.6-3 ms a call against 0.3-0.6 ms on ONNX Runtime); the graph is only served
    # where it reproduced scikit-learn at load (app.runtimes.onnx_engine).
    onnx_acceleration: bool = Field(
        default=True,
        description="Serve scikit-learn models with numeric inputs through ONNX Runtime when "
        "skl2onnx converts them and the graph reproduces scikit-learn's outputs on rows "
        "generated at load; false: scikit-learn computes every model.",
    )
    warmup: bool = True

    def resolved_inference_threads(self) -> int:
        """Threads for one model's forward pass: the setting, else the cores we may use."""
        return self.inference_threads or _usable_cores()


class SecuritySettings(_Group):
    """API keys, admin keys, the model-control API, CORS (docs/security.md)."""

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

    @field_validator("api_keys", "admin_api_keys", "cors_origins", mode="before")
    @classmethod
    def _lists_from_env(cls, value: object) -> object:
        return _split_list(value)

    @model_validator(mode="after")
    def _keys_set_means_keys_required(self) -> SecuritySettings:
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
