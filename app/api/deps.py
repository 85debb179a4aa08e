"""Typed FastAPI dependencies: how a route reaches the server's parts, and the path parameters
the model routes share.

`create_app` puts each part on `app.state` (the one place that writes it); this module is the
one place that reads it, each part with its type, so a route says in its signature what it
uses (`service: Service`) and mypy checks the use. The hot paths (`:predict`, V2 `infer`) do
not go through dependency injection: their ASGI endpoints hold the protocol they call
(`app.api.predict.PredictEndpoint`, `app.api.v2.InferEndpoint`), because resolving
dependencies costs measurable event-loop time per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.metrics import Metrics
from app.monitoring import Monitor
from app.monitoring.promotion import Promoter
from app.protocols.v1 import V1Protocol
from app.protocols.v2 import V2Protocol
from app.repository.control import RepositoryControl
from app.schemas.versions import MAX_VERSION, MIN_VERSION, VERSION_RANGE
from app.service import PredictionService

# Swagger UI pre-fills these from examples of the models that exist (see app.main).
ModelName = Annotated[str, Path(description="Model name")]
ModelVersion = Annotated[
    int, Path(ge=MIN_VERSION, le=MAX_VERSION, description=f"Model version ({VERSION_RANGE})")
]


def service_of(request: Request) -> PredictionService:
    """The server's wiring: repository, core, protocols, readiness."""
    service: PredictionService = request.app.state.service
    return service


def promoter_of(request: Request) -> Promoter | None:
    """The promotion comparisons and decisions (None before `create_app` set them)."""
    promoter: Promoter | None = getattr(request.app.state, "promoter", None)
    return promoter


# Dependencies are `async def`: FastAPI runs a plain `def` dependency on its thread pool.
async def _service(request: Request) -> PredictionService:
    return service_of(request)


async def _v1(request: Request) -> V1Protocol:
    return service_of(request).v1


async def _v2(request: Request) -> V2Protocol:
    return service_of(request).v2


async def _monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


async def _promoter(request: Request) -> Promoter:
    promoter: Promoter = request.app.state.promoter
    return promoter


async def _repository(request: Request) -> RepositoryControl:
    control: RepositoryControl = request.app.state.repository
    return control


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


Service = Annotated[PredictionService, Depends(_service)]
V1 = Annotated[V1Protocol, Depends(_v1)]
V2 = Annotated[V2Protocol, Depends(_v2)]
MonitorDep = Annotated[Monitor, Depends(_monitor)]
PromoterDep = Annotated[Promoter, Depends(_promoter)]
Repository = Annotated[RepositoryControl, Depends(_repository)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
