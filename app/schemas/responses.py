"""Response models for the API docs (the handlers write JSON directly, with orjson)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.schemas.card import HeldOutMetrics


class ErrorResponse(BaseModel):
    """The one error shape of the whole service."""

    error: str = Field(
        description="What is wrong and how to fix it.",
        examples=["unknown model 'iris'; available models: iris-knn, mnist-cnn"],
    )


_DESCRIPTIONS = {
    400: "Malformed request: the body is not valid JSON (or not valid multipart data).",
    401: "Missing or wrong API key (only when API keys are configured).",
    403: "The key lacks the role (model control needs an admin key), the operation is off "
    "on this server, or the prediction belongs to another key.",
    404: "Unknown model, version or path.",
    409: "The operation contradicts the server's configuration (an unload while the models "
    "dir is polled).",
    413: "Too large: body, image pixels or number of instances over a limit.",
    415: "Wrong content type.",
    422: "Invalid input: wrong shape, type or range, NaN/Infinity, text too long.",
    500: "The model failed on this batch; the server keeps running.",
    503: "Overloaded, still loading, model failed to load, or shutting down: see Retry-After.",
    504: "No prediction within the request deadline.",
}


_EXAMPLES = {
    400: "the body is not valid JSON (Invalid JSON: EOF while parsing a list at line 1 column "
    '20); send {"instances": [...]}',
    401: "missing or wrong API key: send 'Authorization: Bearer <key>' (in Swagger UI, use the "
    "Authorize button)",
    403: "this operation needs an admin key (SYNERGY_ADMIN_API_KEYS); prediction keys cannot "
    "change the models served",
    404: "unknown model 'iris'; available models: binary-mlp, imdb-sentiment, iris-knn, mnist-cnn",
    409: "model iris-knn cannot be unloaded while the models dir is polled "
    "(SYNERGY_MODEL_POLL_S > 0): remove its folder instead, or set SYNERGY_MODEL_POLL_S=0 to "
    "control models explicitly",
    413: "too many instances: at most 1000 per request; split them over several requests",
    415: "the body must be JSON, sent with Content-Type: application/json (got text/plain)",
    422: "instances[0]: List should have at least 4 items after validation, not 3. Each "
    "instance: an object with the 4 features {sepal_length, sepal_width, petal_length, "
    "petal_width} or a list of 4 numbers in that order",
    500: "model mnist-cnn/1 failed on this batch (ValueError: ...); the server is fine, the "
    "request can be retried",
    503: "model mnist-cnn/1 is overloaded (1024 rows queued, limit 1024); retry after 1 s",
    504: "no prediction from model mnist-cnn/1 within the request deadline (10000 ms); the "
    "server is overloaded, retry later",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error codes, all `{"error": "..."}`."""
    return {
        code: {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS[code],
            "content": {"application/json": {"example": {"error": _EXAMPLES[code]}}},
        }
        for code in codes
    }


class ModelVersionStatus(BaseModel):
    """Where one model version stands."""

    name: str
    version: int
    state: str = Field(description="loading | ready | failed | unloading | stopped")
    reason: str | None = Field(default=None, description="Why it failed, when it failed.")
    device: str | None = Field(default=None, description="Where its forward pass runs.")
    engine: str | None = Field(
        default=None,
        description="What computes its forward pass when not its framework (e.g. ONNX "
        "Runtime for a scikit-learn model, SYNERGY_ONNX_ACCELERATION).",
    )


class FailedVersion(BaseModel):
    """A version that failed to load, and why."""

    name: str
    version: int
    reason: str | None = None


class ReadinessResponse(BaseModel):
    """200 when every model has a version serving (a failed new version of a model whose
    previous version serves, or a failed new model, does not make it 503: see `failed`)."""

    status: str = Field(description="ready | loading | not ready | shutting down")
    failed: list[FailedVersion] = Field(
        description="Versions that failed to load, with the reason; listed also when 200."
    )
    models: list[ModelVersionStatus]


class ModelReadinessResponse(BaseModel):
    """One model: 200 only when it serves and none of its versions failed or is loading."""

    name: str
    status: str = Field(
        description="ready | loading | degraded (serves, but a version failed) | failed | "
        "not ready | shutting down"
    )
    serving: bool = Field(description="A version of this model answers predictions now.")
    failed: list[FailedVersion]
    versions: list[ModelVersionStatus]


class ServingConfig(BaseModel):
    """The model's serving config in force (its config.json, else the defaults)."""

    version_policy: dict[str, Any] = Field(
        description='{"latest": N}, {"all": true} or {"specific": [versions]}.'
    )
    version_labels: dict[str, int] = Field(
        description="Label -> version; POST /v1/models/{name}/labels/{label}:predict."
    )
    traffic: dict[str, float] | None = Field(
        default=None, description="Weights over labels or versions for unversioned requests."
    )
    shadow: str | int | None = Field(
        default=None, description="The label or version that gets a copy of the traffic."
    )
    config_error: str | None = Field(
        default=None,
        description="Why the current config.json was refused (the previous stays in force).",
    )
    unloaded: bool | None = Field(default=None, description="Unloaded by the repository API.")


class ModelSummary(ServingConfig):
    """One model in the listing."""

    name: str
    latest_version: int | None
    versions: list[ModelVersionStatus]
    framework: str | None = None
    task: str | None = None
    input_kind: str | None = None
    labels: list[str] | None = None
    description: str | None = None
    report: str = Field(description="URL path of the model's report page (HTML).")


class ModelList(BaseModel):
    """All models the server knows."""

    models: list[ModelSummary]


class ServingInfo(ServingConfig):
    """How the server runs this model version."""

    state: str
    reason: str | None = None
    device: str | None = None
    engine: str | None = None
    load_seconds: float | None = None
    max_batch_size: int
    max_batch_wait_ms: float
    max_queue_rows: int
    max_queue_wait_ms: float


class ModelDetail(BaseModel):
    """The model card plus the server's view of it."""

    card: dict[str, Any] = Field(description="The model card (see card.json).")
    serving: ServingInfo
    report: str = Field(description="URL path of this version's report page (HTML).")


class LatencyStats(BaseModel):
    p50: float | None
    p90: float | None
    p99: float | None
    window: int = Field(description="How many recent successful requests the percentiles use.")


class LabelShare(BaseModel):
    count: int
    share: float


class ServingStatsResponse(BaseModel):
    """Live numbers since the process started."""

    requests: int
    errors: int
    errors_by_status: dict[str, int]
    latency_ms: LatencyStats
    predicted_labels: dict[str, LabelShare]


class ModelMetricsResponse(BaseModel):
    """Held-out evaluation from training, and live serving stats."""

    model: str
    version: int
    held_out: HeldOutMetrics
    serving: ServingStatsResponse
