"""The server's in-flight HTTP requests, for the graceful drain at shutdown and its hard
deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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
