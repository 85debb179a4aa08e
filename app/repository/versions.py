"""One model version: the lifecycle's mutable record of it, and the frozen views it hands out.

- `ModelEntry`: the lifecycle's bookkeeping for one version folder (state, reason, leases,
  fingerprint); changed only by the lifecycle, on the event loop.
- `CardedVersion`: a version whose card is valid (name, version, folder, card, kind, task),
  whatever its state: what listings, metadata and the API docs need.
- `ServedVersion`: a version that is fully loaded and serving (the above, plus its runtime,
  batcher and live stats). `select` hands these out; no field is ever missing, and none can
  be reassigned (the lifecycle replaces the whole object instead).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.batching import Batcher
from app.kinds import InputAdapter
from app.metrics import ServingStats
from app.runtimes.base import Model
from app.schemas.card import ModelCard
from app.tasks import Task, task_of

log = logging.getLogger(__name__)


class ModelState(enum.StrEnum):
    """Life of one model version in the server."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    # Retired (out of the policy, removed, unloaded): takes no new requests, finishes the
    # ones in flight, then is unloaded and leaves the registry.
    UNLOADING = "unloading"
    STOPPED = "stopped"


class Leases:
    """Requests (and shadow copies) using a version: a retired version is unloaded only when
    none is left."""

    __slots__ = ("_idle", "count")

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None

    def acquire(self) -> None:
        self.count += 1

    def release(self) -> None:
        self.count -= 1
        if self.count <= 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request uses the version (at most `timeout_s`); False on timeout."""
        if self.count <= 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True, eq=False, slots=True)
class CardedVersion:
    """A version whose card is valid: its input kind (schema, V2 tensor spec) and task
    (outputs, their encoding) exist even while the version loads, so listings and docs can
    describe it; its live stats too."""

    name: str
    version: int
    folder: Path
    card: ModelCard
    kind: InputAdapter
    task: Task
    stats: ServingStats


@dataclass(frozen=True, eq=False, slots=True)
class ServedVersion(CardedVersion):
    """A fully loaded version that serves: its runtime, its running batcher, and the leases
    of the requests using it. Frozen: the lifecycle replaces a version, it never edits one
    in place."""

    model: Model
    batcher: Batcher
    leases: Leases

    @classmethod
    def of(
        cls, carded: CardedVersion, model: Model, batcher: Batcher, leases: Leases
    ) -> ServedVersion:
        """`carded`, loaded: its runtime, its running batcher and its leases."""
        return cls(
            carded.name,
            carded.version,
            carded.folder,
            carded.card,
            carded.kind,
            carded.task,
            carded.stats,
            model,
            batcher,
            leases,
        )

    def acquire(self) -> None:
        """A request (or a shadow copy) uses this version until `release`."""
        self.leases.acquire()

    def release(self) -> None:
        """The request that acquired this version has finished."""
        self.leases.release()


@dataclass(eq=False)
class ModelEntry:
    """The lifecycle's record of one model version folder.

    `card` is None when the card is missing or invalid (the version is FAILED, with the
    reason); `carded` is set once the lifecycle admits a version with a valid card, `served`
    while the version is loaded and serving (READY; kept at STOPPED, cleared when unloaded).
    """

    name: str
    version: int
    folder: Path
    card: ModelCard | None
    state: ModelState = ModelState.LOADING
    reason: str | None = None
    carded: CardedVersion | None = None
    served: ServedVersion | None = None
    load_seconds: float | None = None
    stats: ServingStats = field(default_factory=ServingStats)
    # What the folder held when the card was read (names, sizes, mtimes): a failed version is
    # tried again only when its files change.
    fingerprint: str = ""
    leases: Leases = field(default_factory=Leases)

    def admit(self, card: ModelCard, kind: InputAdapter) -> CardedVersion:
        """Hold the version as carded (`card`, its valid card; `kind`, made from it)."""
        self.carded = CardedVersion(
            self.name, self.version, self.folder, card, kind, task_of(card), self.stats
        )
        return self.carded

    def ready(self, served: ServedVersion) -> None:
        """Mark the version serving (loaded, warm, its batcher running)."""
        self.served = served
        self.state = ModelState.READY

    def fail(self, reason: str) -> None:
        """Mark the version failed, with a reason for readiness and the logs."""
        self.state = ModelState.FAILED
        self.reason = reason
        log.error("model %s version %s failed: %s", self.name, self.version, reason)

    def status(self) -> dict[str, Any]:
        """State for health and listing endpoints."""
        status: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "state": self.state.value,
        }
        if self.reason:
            status["reason"] = self.reason
        if self.served is not None and self.state is ModelState.READY:
            status["device"] = self.served.model.device
            if self.served.model.engine:
                status["engine"] = self.served.model.engine
        return status
