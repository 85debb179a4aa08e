"""Pure ASGI middleware: observability, body-size limit, API keys.

Written against raw ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a
stream copy per request on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import ROUTING_HEADERS, SCOPE_KEY, RequestContext, request_context
from app.errors import Forbidden, PayloadTooLarge, Unauthorized, Unavailable
from app.http_errors import render_error
from app.logs import AccessLog
from app.metrics import Metrics
from app.settings import ConfigError

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


SHUT_DOWN_MESSAGE = (
    "the server shut down before this request finished (grace period over); retry on "
    "another replica"
)


class ServerState:
    """In-flight HTTP requests, for the graceful drain at shutdown and its hard deadline."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.cutting_off = False
        self.shutdown_deadline: float | None = None  # time.monotonic() when the grace ends

    def time_left_s(self, default_s: float) -> float:
        """Seconds left of the shutdown grace period (`default_s` when no signal came)."""
        if self.shutdown_deadline is None:
            return default_s
        return max(0.0, self.shutdown_deadline - time.monotonic())

    def cut_off(self) -> int:
        """Grace period over: stop every request still in flight; each answers a JSON 503
        (see ObservabilityMiddleware). Returns how many were stopped."""
        self.cutting_off = True
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        return len(tasks)


class ObservabilityMiddleware:
    """Request id in and out, in-flight gauge, per-request metrics, one JSON log line."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, state: ServerState, access_log: AccessLog | None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.state = state
        self.recorder = RequestRecorder(metrics, access_log, "http")
        # The in-flight gauge reads the count at scrape time: no two locked updates per request.
        metrics.in_flight.set_function(lambda: state.in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        routing: list[tuple[bytes, bytes]] | None = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
            elif key in ROUTING_HEADERS:
                routing = [*(routing or ()), (key, value)]
        # Unique enough to find a request in the logs, and no syscall (uuid4 reads urandom).
        request_id = request_id or f"{random.getrandbits(64):016x}"
        # Arrival time: the deadline counts from it, and requests that arrived before a
        # SIGTERM still finish.
        context = scope[SCOPE_KEY] = RequestContext(request_id=request_id, arrived=started)
        if routing is not None:
            context.route_headers(routing)
        status = 500
        started_response = False
        encoded_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", encoded_id)]
            await send(message)

        task = asyncio.current_task()
        if task is not None:
            self.state.tasks.add(task)
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not self.state.cutting_off or task is None:
                raise
            task.uncancel()
            # Cut off at the end of the shutdown grace period: the documented JSON 503, not
            # the server's plain-text 500 and a traceback per request.
            if not started_response:
                # A second cancel (uvicorn's own deadline on a very slow machine) only closes
                # the connection; it must not turn into uvicorn's plain-text 500.
                with contextlib.suppress(asyncio.CancelledError):
                    await render_error(Unavailable(SHUT_DOWN_MESSAGE, close_connection=True))(
                        scope, receive, send_with_id
                    )
        finally:
            self.state.tasks.discard(task)
            self.state.in_flight -= 1
            context.status = status
            context.release()
            self._record(scope, context, time.perf_counter() - started)

    def _record(self, scope: Scope, context: RequestContext, latency_s: float) -> None:
        # The endpoint's name ("predict", "ready", ...): bounded, unlike raw paths. The
        # protocol names it, or the route's function does.
        endpoint = context.endpoint or (
            getattr(scope.get("endpoint"), "__name__", None) or "unmatched"
        )
        self.recorder.record(context, latency_s, endpoint, scope["method"], scope["path"])


class RequestRecorder:
    """What every finished request leaves behind, whatever its protocol: the request counter
    and latency histogram (labelled with the protocol), the serving version's live stats and
    one access log line. HTTP requests are recorded by `ObservabilityMiddleware`, gRPC calls
    by `app.rpc`."""

    def __init__(self, metrics: Metrics, access_log: AccessLog | None, protocol: str) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.protocol = protocol
        # Bound Prometheus children per label set: labels() costs a lock and validation.
        self._series: dict[tuple[str, str, str, str, int], tuple[Any, Any]] = {}

    def record(
        self,
        context: RequestContext,
        latency_s: float,
        endpoint: str,
        method: str,
        path: str,
        **log_fields: Any,
    ) -> None:
        """Count one request that ended with `context.status` (an HTTP status; gRPC calls
        record the HTTP status their code stands for, and their code in `log_fields`)."""
        model, status, label = context.model, context.status, context.label
        version = "" if context.version is None else str(context.version)
        key = (model, version, label, endpoint, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self.metrics.requests.labels(
                    model, version, label, endpoint, self.protocol, str(status)
                ),
                self.metrics.request_latency.labels(model, version, label, endpoint, self.protocol),
            )
        series[0].inc()
        series[1].observe(latency_s)
        if context.stats is not None:  # the serving model version's
            context.stats.record_request(status, latency_s)
        if self.access_log is not None and self.access_log.logs(path):
            self.access_log.write(
                {
                    "request_id": context.request_id,
                    "method": method,
                    "path": path,
                    "model": model or None,
                    "version": context.version,
                    "status": status,
                    "rows": context.rows,
                    "latency_ms": round(latency_s * 1000.0, 3),
                    **log_fields,
                }
            )


class BodyLimitMiddleware:
    """413 for bodies over the limit: at once from Content-Length, else while streaming."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self, size: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the body is {size} bytes, over the limit of {self.max_body_bytes}; send fewer "
            "instances per request or smaller images"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_body_bytes:
                    error = self._too_large(str(declared))
                    error.headers["Connection"] = "close"
                    await render_error(error)(scope, receive, send)
                    return
                break
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the app's body read: the app's error handler renders 413.
                    raise self._too_large(f"over {received}")
            return message

        await self.app(scope, counting_receive, send)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def load_key_digests(
    keys: Iterable[str], hashed_keys_file: Path | None, setting: str = "SYNERGY_API_KEYS_FILE"
) -> list[bytes]:
    """sha256 digests of the plain keys, plus those listed (hex, one a line) in the file.

    Raises ConfigError when the file cannot be read, has a line that is not a digest, or
    holds no digest at all: setting a keys file means "require a key", never "open to all".
    `setting` names the file's setting in those messages.
    """
    digests = [_digest(key) for key in keys if key]
    if hashed_keys_file is not None:
        try:
            text = hashed_keys_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{setting} {hashed_keys_file} cannot be read "
                f"({exc.strerror if isinstance(exc, OSError) else 'not text'})"
            ) from exc
        found = 0
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if not re.fullmatch(r"[0-9a-fA-F]{64}", line):
                raise ConfigError(f"{hashed_keys_file}:{number}: expected a sha256 hex digest")
            digests.append(bytes.fromhex(line))
            found += 1
        if not found:
            raise ConfigError(
                f"{setting} {hashed_keys_file} holds no key digest; add one "
                '(printf %s "$KEY" | sha256sum), or unset it'
            )
    return digests


# Where admin paths (app.api.repository.ADMIN_PATHS) start or end.
ADMIN_PREFIX = "/v2/repository/"
ADMIN_SUFFIX = "/decisions"


def caller_fingerprint(digest: bytes) -> str:
    """What the server remembers of a key (the owner of a prediction): 16 hex digits of a
    hash of its sha256 digest, so neither the key nor its digest is ever stored."""
    return hashlib.sha256(b"synergy-caller\0" + digest).hexdigest()[:16]


def token_fingerprint(token: str) -> str:
    """The caller fingerprint of a presented key (as `caller_fingerprint` of its digest)."""
    return caller_fingerprint(_digest(token))


def key_index(key_digests: list[bytes], token: str) -> int:
    """Index in `key_digests` of the key `token` is, or -1 (compared with every key, in
    constant time, whatever matches first). Every protocol checks keys with this."""
    presented = _digest(token)
    found = -1
    for index, digest in enumerate(key_digests):
        if hmac.compare_digest(presented, digest):
            found = index
    return found


def key_matches(key_digests: list[bytes], token: str) -> bool:
    """Whether `token` is one of the keys (see `key_index`)."""
    return key_index(key_digests, token) >= 0


class ApiKeyMiddleware:
    """Every path needs `Authorization: Bearer <key>` except the open ones; admin paths need
    an admin key (docs/security.md).

    Deny by default: a route added later is protected unless it is listed as open here. The
    caller's key fingerprint and role go into the request's context (feedback ownership,
    per-caller shares).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        key_digests: list[bytes],
        open_paths: set[str],
        open_prefixes: tuple[str, ...],
        browser_paths: re.Pattern[str] | None = None,
        admin_digests: list[bytes] | None = None,
        admin_paths: re.Pattern[str] | None = None,
    ) -> None:
        self.app = app
        admin_digests = admin_digests or []
        # Admin keys work wherever a prediction key does; with no prediction keys at all, the
        # paths that are not admin paths are open (only admin keys were configured).
        self.require_key = bool(key_digests)
        self.digests = [*key_digests, *admin_digests]
        self.roles = [False] * len(key_digests) + [True] * len(admin_digests)
        self.fingerprints = [caller_fingerprint(d) for d in self.digests]
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes
        # Pages people open in a browser (the model reports): GET/HEAD there may present the
        # key as `?key=`, and a browser without one gets a form asking for it.
        self.browser_paths = browser_paths
        self.admin_paths = admin_paths if admin_digests else None

    def _match(self, token: str) -> int:
        """Index of the configured key `token` is, or -1."""
        return key_index(self.digests, token)

    def _is_browser_page(self, scope: Scope) -> bool:
        return (
            self.browser_paths is not None
            and scope["method"] in ("GET", "HEAD")
            and self.browser_paths.match(scope["path"]) is not None
        )

    def _key_index(self, scope: Scope) -> int:
        """The presented key's index; -1 for none, -2 for a malformed or unknown one."""
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return -2
                index = self._match(token.strip())
                return index if index >= 0 else -2
        if self._is_browser_page(scope):
            token = QueryParams(scope.get("query_string", b"").decode("latin-1")).get("key")
            if token is None or not token.strip():
                return -1
            index = self._match(token.strip())
            return index if index >= 0 else -2
        return -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.open_paths or path.startswith(self.open_prefixes):
            await self.app(scope, receive, send)
            return
        index = self._key_index(scope)
        if index >= 0:
            context = request_context(scope)
            context.caller = self.fingerprints[index]
            context.admin = self.roles[index]
        admin_only = (
            self.admin_paths is not None
            and scope["method"] not in ("GET", "HEAD")
            # Cheap tests first: the regex is not free, and predictions never need it.
            and (path.startswith(ADMIN_PREFIX) or path.endswith(ADMIN_SUFFIX))
            and self.admin_paths.match(path) is not None
        )
        if admin_only:
            if index >= 0 and self.roles[index]:
                await self.app(scope, receive, send)
                return
            if index >= 0:
                await render_error(
                    Forbidden(
                        "this operation needs an admin key (SYNERGY_ADMIN_API_KEYS); prediction "
                        "keys cannot change the models served"
                    )
                )(scope, receive, send)
                return
        elif index >= 0 or (not self.require_key and index == -1):
            await self.app(scope, receive, send)
            return
        if self._is_browser_page(scope) and _accepts_html(scope):
            from app.report import login_page  # the page module only where it is needed

            nonce = secrets.token_urlsafe(18)
            await HTMLResponse(
                login_page(scope.get("root_path", "") + scope["path"], nonce),
                status_code=401,
                headers={
                    "WWW-Authenticate": "Bearer",
                    "Content-Security-Policy": "default-src 'none'; style-src 'nonce-"
                    f"{nonce}'; form-action 'self'; frame-ancestors 'none'",
                    "Referrer-Policy": "no-referrer",
                    "Cache-Control": "no-store",
                },
            )(scope, receive, send)
            return
        await render_error(
            Unauthorized(
                "missing or wrong API key: send 'Authorization: Bearer <key>' (in Swagger UI, "
                "use the Authorize button)"
            )
        )(scope, receive, send)


def _accepts_html(scope: Scope) -> bool:
    """Whether the client asked for HTML by name (a browser navigating; API clients and
    `*/*` get the JSON error)."""
    for key, value in scope["headers"]:
        if key == b"accept":
            return b"text/html" in value
    return False


class HeadMiddleware:
    """`HEAD` on every GET endpoint: the GET response without its body (RFC 9110 9.3.2).

    Generic, so a GET route added later answers HEAD too (uptime monitors and `curl -I`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, send_headers_only)
        finally:
            if "endpoint" in inner:  # the route's name labels the request's metrics
                scope["endpoint"] = inner["endpoint"]
