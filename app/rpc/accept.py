"""Accepting gRPC inference calls ahead: several outstanding call requests in grpc.aio.

grpc.aio's serving loop (`AioServer._server_main_loop`, grpcio's
`_cygrpc/aio/server.pyx.pxi`) keeps one outstanding `grpc_server_request_registered_call`
per method and asks for the next call only after the accepted one has gone through the
completion queue's poller thread, the event loop, the request's task and the loop's
`asyncio.wait`: four to five event-loop iterations and a thread hand-off per call. On a loop
shared with the HTTP service and the batchers, calls that arrive together wait in gRPC's core
while the loop has idle time (bench/RESULTS.md, issue 26: ~7 of 64 calls in flight inside the
handler, the event loop half busy).

`PrefetchingAioServer` overrides the one method the serving loop calls for its next call,
`_make_request_call_future`: for the methods named in `prefetched` it keeps up to `depth`
call requests outstanding (`AcceptedCalls`), so the core hands over calls that arrive together
at once and the serving loop takes each without the poller's round trip. Accepted calls wait
here (at most `depth` per method, counted with the outstanding requests: beyond that, calls
wait in the core as before). Everything else (handlers, interceptors, deadlines, shutdown) is
grpc.aio's. At shutdown, calls accepted but not yet taken are released (`discard`): the core
cancels them, as it refuses calls that arrive while the server stops.

grpcio's serving loop is not a public API: `tests/unit/test_rpc_accept.py` checks the pool,
and the e2e tier runs every RPC through this server; `SYNERGY_GRPC_ACCEPT_AHEAD=1` turns the
prefetching off (grpc.aio's own behaviour).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Any

import grpc
from grpc._cython import cygrpc
from grpc.aio import _server as aio_server


class AcceptedCalls:
    """One method's outstanding call requests and its accepted calls not yet taken.

    `request()` asks the core for the next call (a future of its RPC state); `running()` says
    whether the server still serves. At most `depth` requests and accepted calls together.
    """

    def __init__(
        self,
        request: Callable[[], asyncio.Future[Any]],
        running: Callable[[], bool],
        loop: asyncio.AbstractEventLoop,
        depth: int,
    ) -> None:
        self._request = request
        self._running = running
        self._loop = loop
        self._depth = depth
        self._accepted: deque[asyncio.Future[Any]] = deque()
        self._waiting: asyncio.Future[Any] | None = None
        self.outstanding = 0

    @property
    def accepted(self) -> int:
        """Calls accepted from the core and not taken yet."""
        return len(self._accepted)

    def take(self) -> asyncio.Future[Any]:
        """A future of the next accepted call (done at once when one is waiting)."""
        taken: asyncio.Future[Any] = self._loop.create_future()
        if self._accepted:
            _settle(taken, self._accepted.popleft())
        else:
            self._waiting = taken
        self._refill()
        return taken

    def discard(self) -> None:
        """Release the accepted calls nobody will take (the server stops)."""
        self._accepted.clear()

    def _refill(self) -> None:
        while self.outstanding + len(self._accepted) < self._depth and self._running():
            request = self._request()
            self.outstanding += 1
            request.add_done_callback(self._arrived)

    def _arrived(self, request: asyncio.Future[Any]) -> None:
        self.outstanding -= 1
        failed = request.cancelled() or request.exception() is not None  # retrieves it
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            _settle(waiting, request)
        elif failed or not self._running():
            pass  # the server stops: nobody will take it, and dropping it cancels the call
        else:
            self._accepted.append(request)
        if not failed:
            self._refill()


def _settle(future: asyncio.Future[Any], request: asyncio.Future[Any]) -> None:
    if request.cancelled():
        future.cancel()
    elif (error := request.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(request.result())


class PrefetchingAioServer(cygrpc.AioServer):
    """grpc.aio's core server with `depth` call requests ahead for the `prefetched` methods."""

    def __init__(self, *args: Any, prefetched: Collection[str], depth: int) -> None:
        super().__init__(*args)
        self._prefetched = {method.encode() for method in prefetched}
        self._depth = depth
        self._calls: dict[bytes, AcceptedCalls] = {}

    def _make_request_call_future(self, method_bytes: bytes | None) -> asyncio.Future[Any]:
        if method_bytes not in self._prefetched or self._depth <= 1:
            return super()._make_request_call_future(method_bytes)  # type: ignore[no-any-return]
        calls = self._calls.get(method_bytes)
        if calls is None:
            calls = self._calls[method_bytes] = AcceptedCalls(
                lambda: super(PrefetchingAioServer, self)._make_request_call_future(method_bytes),
                self.is_running,
                asyncio.get_running_loop(),
                self._depth,
            )
        return calls.take()

    def discard_accepted(self) -> None:
        """Release every call accepted and not taken (once the server stops)."""
        for calls in self._calls.values():
            calls.discard()

    def ahead(self) -> dict[str, int]:
        """Per prefetched method seen so far: call requests outstanding plus calls accepted
        and not taken (`depth` while the serving loop keeps up)."""
        return {
            method.decode(): calls.outstanding + calls.accepted
            for method, calls in self._calls.items()
        }


class PrefetchingServer(aio_server.Server):
    """`grpc.aio.server(options=..., interceptors=...)` with inference calls accepted ahead."""

    def __init__(
        self,
        options: Sequence[tuple[str, Any]],
        interceptors: Sequence[grpc.aio.ServerInterceptor],
        *,
        prefetched: Collection[str],
        depth: int,
    ) -> None:
        # grpc.aio.server() does the same with cygrpc.AioServer (grpc/aio/_server.py).
        self._loop = cygrpc.get_working_loop()
        self._core = PrefetchingAioServer(
            self._loop,
            None,
            (),
            tuple(interceptors) or None,
            aio_server._augment_channel_arguments(tuple(options), None),
            None,
            prefetched=prefetched,
            depth=depth,
        )
        self._server = self._core

    def calls_ahead(self) -> dict[str, int]:
        """`PrefetchingAioServer.ahead`: what the core has been asked for ahead, per method."""
        return self._core.ahead()

    async def stop(self, grace: float | None) -> None:
        stopping = asyncio.ensure_future(super().stop(grace))
        # Its first step marks the core server stopping; from then on no call is taken.
        await asyncio.sleep(0)
        self._core.discard_accepted()
        await stopping
