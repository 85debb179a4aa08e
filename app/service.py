"""`PredictionService`: the wiring of one server's parts, and readiness.

    repository (registry + lifecycle)  ->  core (select, infer)  <-  protocols (v1, v2)

The service makes them, starts loading at start-up, drains and stops at shutdown, and answers
readiness. It decides nothing about a request: the protocols translate, the core infers, the
repository owns each version's lifecycle.
"""

from __future__ import annotations

from typing import Any

from app.core import InferenceCore
from app.events import PredictionEvent, PredictionListener
from app.metrics import Metrics
from app.monitoring import Monitor
from app.protocols.v1 import V1Protocol
from app.protocols.v2 import V2Protocol
from app.repository import ModelRegistry, ModelState
from app.repository.lifecycle import Lifecycle
from app.settings import Settings

__all__ = ["PredictionEvent", "PredictionListener", "PredictionService"]


class PredictionService:
    """One server: its repository, core and protocols (`.core`, `.v1`, `.v2`)."""

    def __init__(self, settings: Settings, registry: ModelRegistry, metrics: Metrics) -> None:
        # A composition root: it hands each part only the settings groups that part reads.
        self.registry = registry
        self.metrics = metrics
        self.core = InferenceCore(
            registry,
            metrics,
            serving=settings.serving,
            limits=settings.limits,
            batching=settings.batching,
            explain=settings.explain,
        )
        self.lifecycle = Lifecycle(
            registry,
            metrics,
            self.core.serve,
            repository=settings.repository,
            limits=settings.limits,
            batching=settings.batching,
            serving=settings.serving,
            explain=settings.explain,
        )
        self.v1 = V1Protocol(self.core)
        self.v2 = V2Protocol(self.core, lambda: self.readiness()[0])
        self.monitor: Monitor | None = None

    def attach_monitor(self, monitor: Monitor) -> None:
        """Record every completed prediction (every protocol and input route) in `monitor`:
        a subscriber of the core, so no protocol knows about monitoring."""
        self.monitor = monitor
        self.core.subscribe(monitor.record)

    @property
    def draining(self) -> bool:
        """Shutdown has begun."""
        return self.core.draining

    async def start(self) -> None:
        """Begin loading every model in the background; returns at once."""
        await self.lifecycle.start()

    async def wait_loaded(self) -> None:
        """Wait until every model has finished loading (ready or failed)."""
        await self.lifecycle.wait_loaded()

    def begin_drain(self) -> None:
        """Shutdown phase 1: readiness goes 503 and predictions that arrive from now on are
        refused. Requests already received (even those still uploading their body) finish."""
        self.lifecycle.stopping = True
        self.core.begin_drain()

    async def stop(self, drain_timeout_s: float) -> None:
        """Shutdown phase 2: finish queued rows (up to the timeout), then stop every worker."""
        self.begin_drain()
        self.lifecycle.stop_loading()
        await self.core.stop(drain_timeout_s)
        self.lifecycle.mark_stopped()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready?, body) for /health/ready. The body lists every version with its state, and
        under `failed` each version that failed to load with its reason, 200 or not: a failed
        new version or new model does not take the replica out of service, but people checking
        readiness must see it."""
        statuses = [entry.status() for entry in self.registry]
        for model in self.registry.models.values():
            statuses.extend(model.refused_status())
        failed = [_failure(s) for s in statuses if s["state"] == ModelState.FAILED.value]
        if self.core.draining:
            return False, {"status": "shutting down", "failed": failed, "models": statuses}
        # At start-up, every version is waited for; later, a loading one does not count.
        settled = self.lifecycle.started_up or not any(
            e.state is ModelState.LOADING for e in self.registry
        )
        if settled and self.registry.serving():
            # Every model has a serving version: a new version that is loading or failed
            # (the previous one serves) does not take the replica out of service.
            return True, {"status": "ready", "failed": failed, "models": statuses}
        loading = any(e.state is ModelState.LOADING for e in self.registry)
        status = "loading" if loading else "not ready"
        return False, {"status": status, "failed": failed, "models": statuses}

    def model_readiness(self, name: str) -> tuple[bool, dict[str, Any]]:
        """(ready?, body) for /health/ready/{name}: ready when the model has a version that
        serves and none of its versions failed or is still loading (raises NotFound).

        Stricter than the replica's readiness on purpose: it answers a person or a rollout
        script asking "did my new version load?", not a load balancer."""
        model = self.registry.model(name)
        statuses = [entry.status() for _, entry in sorted(model.versions.items())]
        states = {s["state"] for s in statuses}
        serving = ModelState.READY.value in states
        failed = [_failure(s) for s in statuses if s["state"] == ModelState.FAILED.value]
        if self.core.draining:
            status = "shutting down"
        elif ModelState.LOADING.value in states:
            status = "loading"
        elif failed:
            status = "failed" if not serving else "degraded"
        else:
            status = "ready" if serving else "not ready"
        body = {
            "name": name,
            "status": status,
            "serving": serving and not self.core.draining,
            "failed": failed,
            "versions": statuses,
        }
        return status == "ready", body


def _failure(status: dict[str, Any]) -> dict[str, Any]:
    return {"name": status["name"], "version": status["version"], "reason": status.get("reason")}
