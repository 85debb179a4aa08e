"""`AcceptedCalls`: call requests kept ahead for grpc.aio's serving loop, bounded, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.rpc.accept import AcceptedCalls

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # grpc.aio's serving loop is asyncio's


class FakeCore:
    """Stands for grpc's core: each request is a future the test completes with a call."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.requests: list[asyncio.Future[Any]] = []
        self.running = True

    def request(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        self.requests.append(future)
        return future

    def pending(self) -> list[asyncio.Future[Any]]:
        return [request for request in self.requests if not request.done()]

    async def arrive(self, *calls: str) -> None:
        """Calls arrive: the oldest outstanding requests complete with them."""
        for call, request in zip(calls, self.pending(), strict=False):
            request.set_result(call)
        await asyncio.sleep(0)  # the done callbacks run


def _calls(depth: int) -> tuple[FakeCore, AcceptedCalls]:
    loop = asyncio.get_running_loop()
    core = FakeCore(loop)
    return core, AcceptedCalls(core.request, lambda: core.running, loop, depth)


async def test_keeps_depth_requests_outstanding_and_hands_calls_over_in_order() -> None:
    core, calls = _calls(depth=4)
    first = calls.take()
    assert calls.outstanding == 4 and not first.done()
    await core.arrive("a", "b", "c")
    # One went to the waiting serving loop, two wait accepted; the pool refilled to 4 in all.
    assert first.result() == "a"
    assert calls.accepted == 2 and calls.outstanding == 2
    second, third = calls.take(), calls.take()
    assert (second.result(), third.result()) == ("b", "c")  # done at once, no round trip
    assert calls.accepted == 0 and calls.outstanding == 4


async def test_accepted_and_outstanding_never_exceed_depth() -> None:
    core, calls = _calls(depth=3)
    calls.take()
    for _ in range(5):  # calls keep arriving while the serving loop takes none
        await core.arrive("x", "x", "x")
    assert calls.accepted + calls.outstanding == 3
    assert len(core.requests) == 4  # one answered the waiting take, then 3 - 1 more


async def test_a_failed_request_reaches_the_serving_loop_and_is_not_refilled() -> None:
    core, calls = _calls(depth=2)
    taken = calls.take()
    core.requests[0].set_exception(RuntimeError("server shutting down"))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        taken.result()
    assert calls.outstanding == 1 and len(core.requests) == 2  # no new request for it


async def test_calls_accepted_while_stopping_are_released_not_queued() -> None:
    core, calls = _calls(depth=3)
    calls.take().cancel()  # the serving loop cancels its wait when the server stops
    core.running = False
    await core.arrive("late", "later")
    assert calls.accepted == 0
    assert len(core.requests) == 3  # nothing asked of a stopping core


async def test_discard_releases_every_accepted_call() -> None:
    core, calls = _calls(depth=4)
    calls.take()
    await core.arrive("a", "b", "c")
    assert calls.accepted == 2
    calls.discard()
    assert calls.accepted == 0
