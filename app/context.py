"""The typed context of one HTTP request, shared by the middleware, protocols and core.

`ObservabilityMiddleware` makes it when a request arrives and stores it in the ASGI scope
under one key; the protocol that serves the request fills in what it learns (the model
version, the row count, the endpoint's name); the middleware reads it back for the metrics
and the access log. One object with named, typed fields instead of string keys on
`scope["state"]`.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.kinds.base import RowWarnings
    from app.metrics import ServingStats
    from app.repository import ServedVersion

SCOPE_KEY = "synergy.context"
# Request headers that choose a model version on every protocol and route (see
# `RequestContext.route_headers`).
PIN_VERSION_HEADER = b"x-model-version"
PIN_LABEL_HEADER = b"x-model-label"
ROUTING_KEY_HEADER = b"x-routing-key"
ROUTING_HEADERS = frozenset((PIN_VERSION_HEADER, PIN_LABEL_HEADER, ROUTING_KEY_HEADER))
# A request id a client may choose (`X-Request-ID`, or gRPC's `x-request-id` metadata).
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id() -> str:
    """A request id for a request that brought none: a UUID version 7 (RFC 9562: 48 bits of
    Unix time in milliseconds, then 74 random bits) in its 36-character text form.

    Time-ordered on purpose: the prediction store indexes rows by request id, and ids that
    grow with time are inserted at the index's end (in SQLite, 4 us per row instead of 16-19
    with random ids, 300,000 rows, measured). The random bits come from `random`, not the
    operating system: unique enough to find a request, with no system call per request."""
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | random.getrandbits(12) << 64
        | 0b10 << 62
        | random.getrandbits(62)
    )
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(slots=True, eq=False)
class RequestContext:
    """What is known about one request, as it is served."""

    request_id: str = ""
    # time.perf_counter() when it arrived: the deadline counts from here, and requests that
    # arrived before a shutdown began still finish.
    arrived: float = 0.0
    # time.perf_counter() by which the client stops waiting (a gRPC call's deadline), or
    # None; the server's own deadline (SYNERGY_REQUEST_TIMEOUT_MS) applies either way.
    client_deadline: float | None = None
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
    # The config label or traffic key that chose the version ("" when none did).
    label: str = ""
    # Routing headers: X-Model-Version / X-Model-Label pin the version of a request that does
    # not name one in its path; X-Routing-Key keeps a caller on one side of a traffic split.
    pin_version: str | None = None
    pin_label: str | None = None
    routing_key: str | None = None
    # The version serving the request holds a lease until the request ends (so a retired
    # version is unloaded only when nothing uses it).
    entry: ServedVersion | None = None
    # The version that gets a copy of this request (the model's shadow), or None.
    shadow: ServedVersion | None = None
    # Who called (docs/security.md): a fingerprint of the API key ("" without keys), never
    # the key; whether that key is an admin key.
    caller: str = ""
    admin: bool = False
    # The client's address, where a per-caller share needs it without keys (explanations).
    client: str = ""
    # Per row of the last inference: its input warnings (see InputAdapter.warnings).
    warnings: Sequence[RowWarnings] = ()

    def serve(self, entry: ServedVersion, label: str = "") -> None:
        """Record which model version serves this request (and lease it until `release`)."""
        if self.entry is not None:
            self.entry.release()
        entry.acquire()
        self.entry, self.label = entry, label
        self.model, self.version, self.stats = entry.name, entry.version, entry.stats

    def release(self) -> None:
        """The request has ended: give back the version's lease."""
        if self.entry is not None:
            self.entry.release()
            self.entry = None

    def route_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Take the routing headers (raw name, value pairs) of the request."""
        for key, value in headers:
            text = value.decode("latin-1").strip()
            if key == PIN_VERSION_HEADER:
                self.pin_version = text
            elif key == PIN_LABEL_HEADER:
                self.pin_label = text
            else:
                self.routing_key = text


def request_context(scope: dict[str, Any] | Any) -> RequestContext:
    """The request's context (made on the spot, arriving now, outside the middleware: tests
    and an app mounted without it)."""
    context: RequestContext | None = scope.get(SCOPE_KEY)
    if context is None:
        context = scope[SCOPE_KEY] = RequestContext(arrived=time.perf_counter())
    return context
