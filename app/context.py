"""The typed context of one HTTP request, shared by the middleware, protocols and core.

`ObservabilityMiddleware` makes it when a request arrives and stores it in the ASGI scope
under one key; the protocol that serves the request fills in what it learns (the model
version, the row count, the endpoint's name); the middleware reads it back for the metrics
and the access log. One object with named, typed fields instead of string keys on
`scope["state"]`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.metrics import ServingStats

SCOPE_KEY = "synergy.context"


@dataclass(slots=True, eq=False)
class RequestContext:
    """What is known about one request, as it is served."""

    request_id: str = ""
    # time.perf_counter() when it arrived: the deadline counts from here, and requests that
    # arrived before a shutdown began still finish.
    arrived: float = 0.0
    # The endpoint's name for the metrics ("predict", "infer", ...); None: the route's name.
    endpoint: str | None = None
    # The protocol that decoded it ("v1", "v2"), for monitoring's route column.
    protocol: str | None = None
    model: str = ""
    version: int | None = None
    rows: int | None = None
    # The serving model version's live stats, fed when the request completes.
    stats: ServingStats | None = None
    status: int = 500

    def serve(self, name: str, version: int, stats: ServingStats) -> None:
        """Record which model version serves this request."""
        self.model, self.version, self.stats = name, version, stats


def request_context(scope: dict[str, Any] | Any) -> RequestContext:
    """The request's context (made on the spot, arriving now, outside the middleware: tests
    and an app mounted without it)."""
    context: RequestContext | None = scope.get(SCOPE_KEY)
    if context is None:
        context = scope[SCOPE_KEY] = RequestContext(arrived=time.perf_counter())
    return context
