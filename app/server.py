"""Connection-level limits for uvicorn's httptools protocol.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) and nothing else that a
client controls before the app runs: with httptools, a request's headers may be any size and
count and take any time, its body may trickle forever, and connections are unlimited
(`limit_concurrency` still accepts every connection, reads its request and answers a
plain-text 503). h11 has `h11_max_incomplete_event_size` but no timeouts either, and is
slower on the hot path. So this subclass of uvicorn's httptools protocol adds what
production HTTP servers (nginx, Node) enforce, at the cost of one comparison per read:

* at most `max_connections` open connections: more are closed as soon as they are accepted
  (a load balancer retries them on another replica), with a rate-limited warning;
* request line + headers over `max_header_bytes`, or more than `max_header_count` headers:
  431, counted on the raw bytes before the parser buffers them;
* headers not complete `header_timeout_s` after the connection opened (or after the next
  request's first byte on a kept-alive connection): 408 (or a plain close when nothing
  was sent) - this closes slowloris connections and ones that never send a byte;
* a body not complete `body_timeout_s` after its headers: 408; the app's read of the body
  sees a disconnect.

Every refusal is `{"error": "..."}` with `Connection: close`, like the app's own errors.

It also writes each response's status line and headers together with its first body chunk:
uvicorn writes them separately, two `send()` system calls where one does, and on a small
JSON answer that second call costs more CPU than the app's own encoding (py-spy, concurrency
64: the two writes were a third of the event loop's samples).
"""

from __future__ import annotations

import logging
import time
from asyncio import TimerHandle, Transport
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.errors import error_body

log = logging.getLogger("synergy.server")

REFUSED_WARNING_INTERVAL_S = 10.0
# After a refusal, the client may still be sending (a 20 MB header): read and drop its bytes
# this long before closing, as nginx's lingering_close does, so that the close does not reset
# the connection before the client has read the answer.
LINGER_S = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may cost (see `app.settings.Settings` for each default)."""

    max_connections: int
    max_header_bytes: int
    max_header_count: int
    header_timeout_s: float
    body_timeout_s: float


def error_bytes(status: int, message: str) -> bytes:
    """A whole `{"error": message}` HTTP/1.1 response that closes the connection."""
    body = error_body(message)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _TooManyHeaders(Exception):
    """Raised in the parser's header callback: stops parsing at once."""


class _RefusedConnections:
    """Counts connections closed for the limit; warns at most every few seconds."""

    count = 0
    warned_at = -REFUSED_WARNING_INTERVAL_S

    @classmethod
    def record(cls, limit: int) -> None:
        cls.count += 1
        now = time.monotonic()
        if now - cls.warned_at >= REFUSED_WARNING_INTERVAL_S:
            log.warning(
                "%d connection(s) closed at once so far: over the limit of %d open "
                "connections (SYNERGY_MAX_CONNECTIONS)",
                cls.count,
                limit,
            )
            cls.warned_at = now


class _HeldWrites:
    """Stands in for the transport while uvicorn writes a response's head: keeps the bytes,
    to go out with the first body chunk (`_CorkedCycle`); everything else is the transport's."""

    __slots__ = ("chunks", "transport")

    def __init__(self, transport: Transport, chunks: list[bytes] | None = None) -> None:
        self.transport = transport
        self.chunks = chunks if chunks is not None else []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _FirstBodyWrite(_HeldWrites):
    """Stands in for the transport while uvicorn writes the first body chunk: the held head
    and the chunk go out in one write, before anything else happens on the connection
    (closing it, or the next pipelined request)."""

    __slots__ = ()

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.transport.write(b"".join(self.chunks))
        self.chunks.clear()


class _CorkedCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing the head and the first body chunk at once.

    uvicorn still builds and checks the head (status line, header validation, keep-alive,
    Content-Length bookkeeping) exactly as before; only the moment it reaches the socket moves.
    A response whose body never comes (the app failed after starting it) is closed by uvicorn
    as before, without the head: the client sees the same broken response.
    """

    _held: list[bytes] | None = None

    async def send(self, message: Any) -> None:
        real = self.transport
        if message["type"] == "http.response.start" and not self.response_started:
            holder = _HeldWrites(real)
            self.transport = holder  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = real
            self._held = holder.chunks
            return
        held, self._held = self._held, None
        if held and message["type"] == "http.response.body":
            self.transport = _FirstBodyWrite(real, held)  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = real
            return
        await super().send(message)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; see `bounded_protocol`."""

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._headers_done = 0  # messages whose headers completed, to tell them apart
        self._message_begun = False
        # The read deadline (loop time) and what to do when it passes; None: no read pending.
        self._deadline: float | None = None
        self._on_deadline: Any = None
        # One timer that fires at or before the deadline (see `_arm`).
        self._timer: TimerHandle | None = None
        self._timer_at = 0.0
        self._discarding = False

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _RefusedConnections.record(self.limits.max_connections)
            transport.close()
            return
        self._arm(self.limits.header_timeout_s, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own 400 is plain text; every error of this service is JSON.
        self._refuse(400, "the request is not valid HTTP/1.1")

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        if self.transport.is_closing() or self._discarding:
            return
        self.transport.write(error_bytes(status, message))
        if self.transport.can_write_eof():
            self._discarding = True
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    # ------------------------------------------------------------------ reading
    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._unset_keepalive_if_required()
        if self._reading_headers:
            room = self.limits.max_header_bytes - self._header_bytes
            if len(data) > room:
                # Feed only what fits: if the headers end in it, the rest (body, next
                # request) follows; if not, the headers are too large, and the parser has
                # buffered no more than the limit.
                done_before = self._headers_done
                if room > 0 and not self._feed(data[:room]):
                    return
                if self._headers_done == done_before:
                    self._refuse(
                        431,
                        f"the request line and headers are over the limit of "
                        f"{self.limits.max_header_bytes} bytes; send fewer or smaller headers",
                    )
                    return
                data = data[room:]
            else:
                self._header_bytes += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> bool:
        """Parse `data`; False when the connection was refused or upgraded."""
        if self.transport.is_closing() or self._discarding or self.parser is None:
            return False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if self._header_count > self.limits.max_header_count:
                self._refuse(
                    431,
                    f"the request has more than {self.limits.max_header_count} headers; send fewer",
                )
            else:
                log.warning("invalid HTTP request received (%s)", exc.__cause__ or exc)
                self.send_400_response("")
            return False
        except httptools.HttpParserError:
            self.send_400_response("")
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    # ------------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._message_begun = True
        self._header_count = 0
        if self._deadline is None:  # the first request's deadline runs from the accept
            self._arm(self.limits.header_timeout_s, self._header_timeout)

    def on_headers_complete(self) -> None:
        # Counted once the headers are in, not in a callback per header (a Python call per
        # header on every request): the byte limit already bounds how many can arrive.
        if len(self.headers) > self.limits.max_header_count:
            self._header_count = len(self.headers)
            raise _TooManyHeaders
        self._reading_headers = False
        self._header_bytes = 0
        self._headers_done += 1
        self._arm(self.limits.body_timeout_s, self._body_timeout)
        super().on_headers_complete()
        # uvicorn makes the cycle here (a module-level class it names directly): the same
        # object, with the one-write `send` (see `_CorkedCycle`).
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = _CorkedCycle

    def on_message_complete(self) -> None:
        self._disarm()
        self._message_begun = False
        super().on_message_complete()

    # ------------------------------------------------------------------ timers
    def _arm(self, delay_s: float, callback: Any) -> None:
        """Call `callback` if the current read is not done `delay_s` from now.

        Every request moves the deadline twice (headers, then body) and clears it once, so
        the timer is not re-made each time (two timers made and cancelled per request were a
        measurable part of the event loop's work): it stays scheduled, and when it fires
        before the current deadline it is scheduled again for it. Only a deadline earlier
        than the timer's makes a new one."""
        deadline = self.loop.time() + delay_s
        self._deadline, self._on_deadline = deadline, callback
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._check_deadline)

    def _disarm(self) -> None:
        self._deadline = self._on_deadline = None

    def _check_deadline(self) -> None:
        self._timer = None
        deadline, callback = self._deadline, self._on_deadline
        if deadline is None:  # nothing is being read: the next read schedules a timer again
            return
        if self.loop.time() < deadline:
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._check_deadline)
            return
        self._disarm()
        callback()

    def _header_timeout(self) -> None:
        if self.transport.is_closing():
            return
        if self._message_begun:
            self._refuse(
                408,
                f"the request's headers did not arrive within {self.limits.header_timeout_s:g} s",
            )
        else:  # nothing was asked: nothing to answer
            self.transport.close()

    def _body_timeout(self) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            self.transport.close()
            return
        # The app's pending read gets a disconnect and its answer goes nowhere; the client
        # gets this one.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(
            408,
            f"the request's body did not arrive within {self.limits.body_timeout_s:g} s; "
            "send it faster or in smaller requests",
        )


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedHttpProtocol]:
    """The protocol class to give uvicorn (`uvicorn.Config(http=...)`) for these limits."""
    return type("BoundedHttpProtocol", (BoundedHttpProtocol,), {"limits": limits})
