"""Typed Python client (sync and async) for Synergy Serve's friendly predict API.

`SynergyClient("http://127.0.0.1:8000").predict("iris-knn", [[5.1, 3.5, 1.4, 0.2]])[0].label`
"""

__version__ = "0.1.0"

from synergy_client.client import AsyncSynergyClient, SynergyClient
from synergy_client.errors import (
    BadRequest,
    ClientError,
    DeadlineExceeded,
    InvalidInput,
    ModelFailed,
    NetworkError,
    NotFound,
    PayloadTooLarge,
    ServerError,
    SynergyError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from synergy_client.responses import (
    CardExample,
    HeldOutMetrics,
    InputWarning,
    LabelShare,
    LatencyStats,
    ModelCard,
    ModelMetrics,
    ModelSummary,
    ModelVersionStatus,
    Prediction,
    Predictions,
    Readiness,
    ServingInfo,
    ServingStats,
)

__all__ = [
    "AsyncSynergyClient",
    "BadRequest",
    "CardExample",
    "ClientError",
    "DeadlineExceeded",
    "HeldOutMetrics",
    "InputWarning",
    "InvalidInput",
    "LabelShare",
    "LatencyStats",
    "ModelCard",
    "ModelFailed",
    "ModelMetrics",
    "ModelSummary",
    "ModelVersionStatus",
    "NetworkError",
    "NotFound",
    "PayloadTooLarge",
    "Prediction",
    "Predictions",
    "Readiness",
    "ServerError",
    "ServingInfo",
    "ServingStats",
    "SynergyClient",
    "SynergyError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "__version__",
]
