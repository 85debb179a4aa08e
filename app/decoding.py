"""The decoding pool: request work that would block the event loop (parsing large bodies,
decoding images) on a bounded pool of threads, within the request's deadline, stopped when
the client hangs up. No web framework: `receive` is ASGI's callable, typed here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.budget import ClientDisconnected, RequestBudget, release_free_memory
from app.errors import ServingError

T = TypeVar("T")
# A connection's `receive` (ASGI's, as starlette types it): the pool watches it for the
# client's disconnect, and spells the type itself so that it needs no web framework.
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
# After a request decoded this many pixels, hand the freed memory back to the OS (glibc keeps
# it in per-thread arenas otherwise: six 25 MP decodes left the process 2 GB larger).
TRIM_AFTER_PIXELS = 1_000_000
# Bodies over this are decoded on a decoding thread: parsing ~1,000 28x28 images as JSON
# takes milliseconds, too long for the event loop that answers every other request.
LARGE_BODY_BYTES = 64 * 1024


class DecodingPool:
    """`threads` decoding threads (SYNERGY_DECODE_THREADS); each job gets a budget of
    `max_pixels` decoded pixels (SYNERGY_MAX_REQUEST_IMAGE_PIXELS) and its deadline."""

    def __init__(self, threads: int, max_pixels: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="decode")
        self._max_pixels = max_pixels

    async def run(
        self,
        job: Callable[[RequestBudget], T],
        remaining_s: float,
        receive: Receive | None,
        late: Callable[[], ServingError],
    ) -> T:
        """`job(budget)` on a decoding thread; raises `late()` after `remaining_s` seconds,
        ClientDisconnected when `receive` reports the client gone. Either way this returns
        at once and the job stops at its next budget check."""
        budget = RequestBudget(time.perf_counter() + remaining_s, self._max_pixels)
        work = asyncio.get_running_loop().run_in_executor(self._executor, _run_job, job, budget)
        work.add_done_callback(_consume)
        watcher = asyncio.ensure_future(_disconnect(receive)) if receive is not None else None
        try:
            waiting: set[asyncio.Future[Any]] = {work} if watcher is None else {work, watcher}
            done, _ = await asyncio.wait(
                waiting, timeout=remaining_s, return_when=asyncio.FIRST_COMPLETED
            )
            if work in done:
                return work.result()
            reason: ServingError = (
                ClientDisconnected("the client disconnected before the answer")
                if watcher is not None and watcher in done
                else late()
            )
            budget.stop(reason)
            raise reason
        except asyncio.CancelledError:
            budget.stop(ClientDisconnected("the request was cancelled"))
            raise
        finally:
            if watcher is not None:
                watcher.cancel()

    def shutdown(self) -> None:
        """Stop taking jobs; queued ones are cancelled, running ones end at their next check."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _run_job(job: Callable[[RequestBudget], T], budget: RequestBudget) -> T:
    """A decoding job on its thread; afterwards, large decodes' memory goes back to the OS."""
    try:
        budget.check()  # it may have waited for a thread past its deadline
        return job(budget)
    finally:
        if budget.pixels >= TRIM_AFTER_PIXELS:
            release_free_memory()


def _consume(future: asyncio.Future[Any]) -> None:
    # A job abandoned at its deadline still ends with a result or an error: nobody reads it.
    if not future.cancelled():
        future.exception()


async def _disconnect(receive: Receive) -> None:
    """Returns when the client has closed the connection (the body was read already, so
    the server's next message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass
