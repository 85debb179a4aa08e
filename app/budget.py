"""What one request may still spend off the event loop: time, decoded image pixels.

Work that runs on a worker thread (decoding images, parsing a large body) cannot be cancelled
from the event loop; instead it checks its request's budget between steps (between images,
before each decode) and stops with the right error when the deadline has passed, the client
hung up, or the request has decoded as many pixels as one request may.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import threading
import time

from app.errors import DeadlineExceeded, PayloadTooLarge, ServingError


class ClientDisconnected(ServingError):
    """The client closed the connection before the answer; nobody reads this response."""

    status_code = 499  # nginx's "client closed request", for the access log and metrics


class RequestBudget:
    """Deadline (perf_counter seconds), decoded-pixel allowance and a stop flag of one request.

    Shared between the event loop (which stops it) and one worker thread (which checks and
    charges it); an Event and a lock make that safe.
    """

    def __init__(self, deadline: float = math.inf, max_pixels: int | None = None) -> None:
        self.deadline = deadline
        self.max_pixels = max_pixels
        self._pixels = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._reason: ServingError | None = None

    def stop(self, reason: ServingError) -> None:
        """Make the next `check` raise `reason` (the deadline passed, the client left)."""
        self._reason = reason
        self._stopped.set()

    def check(self) -> None:
        """Raise if the work for this request should stop now."""
        if self._stopped.is_set():
            assert self._reason is not None
            raise self._reason
        if time.perf_counter() > self.deadline:
            raise DeadlineExceeded(
                "the request took longer than its deadline while its input was decoded; send "
                "fewer or smaller images, or retry later"
            )

    def charge_pixels(self, pixels: int) -> None:
        """Account for decoding `pixels` more; PayloadTooLarge past the allowance."""
        self.check()
        with self._lock:
            self._pixels += pixels
            total = self._pixels
        if self.max_pixels is not None and total > self.max_pixels:
            raise PayloadTooLarge(
                f"the images of this request need {total} decoded pixels so far, over the "
                f"limit of {self.max_pixels} per request; send fewer or smaller images per "
                "request"
            )

    @property
    def pixels(self) -> int:
        with self._lock:
            return self._pixels


def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_TRIM = _malloc_trim()
# glibc's mallopt parameter for the most arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8
# Arenas for the server process: glibc's default is 8 per core, one per thread that meets
# contention. Models load on a fresh thread each time, and each thread's freed memory stays
# in its own arena, so every unload and load of a text model left ~3 MB behind
# (bench/reload_memory.py: +80 MB over 20 cycles; flat with 2 arenas).
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (before its threads start), unless the
    operator set MALLOC_ARENA_MAX; False where it does not apply (not glibc, or already set)."""
    import os

    name = ctypes.util.find_library("c")
    if "MALLOC_ARENA_MAX" in os.environ or not name:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def release_free_memory() -> None:
    """Give memory freed by large decodes back to the OS (glibc's malloc_trim; a no-op
    elsewhere). glibc keeps freed blocks in each thread's arena for reuse, so after a burst
    of large images the process would stay gigabytes larger than it needs to."""
    if _TRIM is not None:
        _TRIM(0)
