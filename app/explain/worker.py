"""The explanation worker: one thread, a bounded queue, a deadline per job.

Explanations cost hundreds of model rows each (a prediction costs one), so they never share
the predictions' batchers: they run here, one at a time, in chunks. Between chunks the worker
gives way to predictions: while any model has rows queued or computing (`pressure`), it waits
(up to `max_yield_s` per chunk, so explanations still progress under constant load). The
thread also runs at a lower OS priority (nice), which helps where the backend computes on the
calling thread (TensorFlow eager, scikit-learn); XLA computes on its own threads, hence the
yielding. A full queue answers 503 + Retry-After at once; a job past its deadline stops at its
next check and its request gets a 504.

Fair share (docs/security.md): each caller (API key, or client address without keys) may
have at most `max_per_caller` jobs waiting or running (503 above), and the worker takes the
callers' jobs in turn, so one caller's stream of requests cannot take the worker from others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.errors import DeadlineExceeded, Unavailable

log = logging.getLogger(__name__)

Check = Callable[[], None]


class JobStopped(Exception):
    """Raised inside a job by `check()` once its deadline passed or its request left."""


YIELD_POLL_S = 0.001


@dataclass
class _Job:
    work: Callable[[Check], Any]
    deadline: float  # time.perf_counter() seconds
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    pressure: Callable[[], bool] | None = None
    max_yield_s: float = 0.0
    stopped: threading.Event = field(default_factory=threading.Event)
    caller: str = ""

    def check(self) -> None:
        if self.stopped.is_set() or time.perf_counter() > self.deadline:
            raise JobStopped
        if self.pressure is None:
            time.sleep(0)  # let the batchers' threads have the interpreter between chunks
            return
        until = min(time.perf_counter() + self.max_yield_s, self.deadline)
        while self.pressure() and time.perf_counter() < until:
            time.sleep(YIELD_POLL_S)


class ExplainWorker:
    """Runs explanation jobs one at a time on its own thread (see the module docstring)."""

    def __init__(
        self,
        *,
        max_queue: int,
        niceness: int,
        pressure: Callable[[], bool] | None = None,
        max_yield_s: float = 0.0,
        max_per_caller: int | None = None,
    ) -> None:
        self.max_queue = max_queue
        self.max_per_caller = max_per_caller or 1 << 30  # None: no per-caller share
        self.niceness = niceness
        self.pressure = pressure
        self.max_yield_s = max_yield_s
        # Waiting jobs per caller, the callers in turn (the next to be served first).
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._waiting = 0
        self._held: dict[str, int] = {}  # jobs waiting or running, per caller
        self._ended = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.busy = False

    @property
    def waiting(self) -> int:
        """Jobs queued and not yet started."""
        return self._waiting

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="explain", daemon=True)
                self._thread.start()

    async def run(
        self, work: Callable[[Check], Any], deadline: float, what: str, caller: str = ""
    ) -> Any:
        """`work(check)` on the worker thread; its result, or 503 (queue full, or `caller`
        over its share) / 504 (past `deadline`, a time.perf_counter() value; `what` names the
        limit in the message)."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        job = _Job(
            work,
            deadline,
            loop,
            loop.create_future(),
            self.pressure,
            self.max_yield_s,
            caller=caller,
        )
        with self._condition:
            if self._held.get(caller, 0) >= self.max_per_caller:
                raise Unavailable(
                    f"this caller already has {self.max_per_caller} explanation(s) waiting or "
                    "running (SYNERGY_EXPLAIN_MAX_PER_CALLER, a fair share of the one "
                    "explanation worker); retry when one has finished",
                    retry_after_s=2,
                )
            if self._waiting >= self.max_queue or self._ended:
                raise Unavailable(
                    f"the explanation worker is busy ({self.max_queue} requests waiting); "
                    "retry shortly, or send fewer instances per request",
                    retry_after_s=2,
                )
            self._queues.setdefault(caller, deque()).append(job)
            self._waiting += 1
            self._held[caller] = self._held.get(caller, 0) + 1
            self._condition.notify()
        try:
            return await asyncio.wait_for(
                asyncio.shield(job.future), timeout=max(0.0, deadline - time.perf_counter())
            )
        except (TimeoutError, JobStopped):
            job.stopped.set()
            raise DeadlineExceeded(
                f"the explanation took longer than its deadline ({what}); send fewer "
                "instances, or retry when the server is less busy"
            ) from None
        except asyncio.CancelledError:
            job.stopped.set()
            raise

    def _run(self) -> None:
        if self.niceness:
            # Linux: a thread's nice value is its own (setpriority on its thread id).
            with contextlib.suppress(AttributeError, OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
        while True:
            job = self._next()
            if job is None:
                return
            if job.stopped.is_set() or job.future.done():
                self._release(job.caller)
                del job
                continue
            self.busy = True
            error: Exception | None
            try:
                job.check()
                result, error = job.work(job.check), None
            except JobStopped as stopped:
                # Past its deadline: its request answers 504 (whichever of this and the
                # request's own timer comes first).
                result, error = None, stopped
            except Exception as exc:  # noqa: BLE001 - handed to the awaiting request
                result, error = None, exc
            finally:
                self.busy = False
                self._release(job.caller)
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)
            # Waiting for the next job must not keep this one's model version alive (it may
            # be unloaded meanwhile).
            del job, result, error

    def _next(self) -> _Job | None:
        """The next caller's oldest job (callers in turn); None once stopped."""
        with self._condition:
            while not self._waiting:
                if self._ended:
                    return None
                self._condition.wait()
            caller, jobs = next(iter(self._queues.items()))
            job = jobs.popleft()
            del self._queues[caller]
            if jobs:
                self._queues[caller] = jobs  # to the back of the line
            self._waiting -= 1
            return job

    def _release(self, caller: str) -> None:
        with self._condition:
            held = self._held.get(caller, 0) - 1
            if held > 0:
                self._held[caller] = held
            else:
                self._held.pop(caller, None)

    def stop(self) -> None:
        """Let the thread end after its current job (queued jobs are dropped)."""
        with self._condition:
            jobs = [job for queued in self._queues.values() for job in queued]
            self._queues.clear()
            self._waiting = 0
            self._held.clear()
            self._ended = True
            self._condition.notify_all()
        for job in jobs:
            job.stopped.set()
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(
                    _settle,
                    job.future,
                    None,
                    Unavailable("the server is shutting down; retry on another replica"),
                )


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
