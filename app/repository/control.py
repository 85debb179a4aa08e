"""The model-control API's logic (Triton's model repository extension), without HTTP.

    index()        -> every model and version with its state and reason
    load(name)     -> rescan one model now (its config and versions), lifting an unload;
                      returns when its versions are loaded (ready or failed)
    unload(name)   -> retire every version of the model; polling leaves it alone until load

Between them the later call wins (docs/lifecycle.md has every interleaving): a load that
arrives while an unload waits for requests in flight waits for it and loads the model again;
an unload that arrives while a load is in progress unloads the model and the load answers 409.

Triton's states: READY, LOADING, UNLOADING and UNAVAILABLE (failed, unloaded).
"""

from __future__ import annotations

from typing import Any

from app.errors import BadRequest, Conflict, Forbidden, NotFound
from app.repository.lifecycle import Lifecycle
from app.repository.registry import ModelRegistry
from app.repository.versions import ModelState

TRITON_STATES = {
    ModelState.LOADING: "LOADING",
    ModelState.READY: "READY",
    ModelState.UNLOADING: "UNLOADING",
    ModelState.FAILED: "UNAVAILABLE",
    ModelState.STOPPED: "UNAVAILABLE",
}


class RepositoryControl:
    """index / load / unload over the registry and the lifecycle.

    `enabled`: load and unload answer at all (off: 403; docs/security.md). `polled`: the
    models dir is rescanned periodically, so an explicit unload is refused (409), as Triton
    refuses explicit model control in its poll mode: otherwise a model unloaded while the
    replica is polled would stay unloaded, readiness 503 and liveness 200 for good.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        lifecycle: Lifecycle,
        *,
        enabled: bool = True,
        polled: bool = False,
    ) -> None:
        self.registry = registry
        self.lifecycle = lifecycle
        self.enabled = enabled
        self.polled = polled

    def require_enabled(self) -> None:
        """Raise Forbidden unless model control (load, unload, promotion decisions by hand)
        is on."""
        if not self.enabled:
            raise Forbidden(
                "the model-control API is off on this server; configure an admin key "
                "(SYNERGY_ADMIN_API_KEYS or SYNERGY_ADMIN_API_KEYS_FILE) or set "
                "SYNERGY_CONTROL_API=true to turn it on"
            )

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """`[{"name", "version", "state", "reason"}]`, by name then version; unloaded models
        appear once with state UNAVAILABLE and reason "unloaded"."""
        rows: list[dict[str, Any]] = []
        for name, model in sorted(self.registry.models.items()):
            if model.unloaded and not model.versions:
                if not ready_only:
                    rows.append(
                        {"name": name, "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}
                    )
                continue
            for version, entry in sorted(model.versions.items()):
                if ready_only and entry.state is not ModelState.READY:
                    continue
                rows.append(
                    {
                        "name": name,
                        "version": str(version) if version else "",
                        "state": TRITON_STATES[entry.state],
                        "reason": entry.reason or "",
                    }
                )
            if not ready_only:
                rows.extend(
                    {"name": name, "version": folder, "state": "UNAVAILABLE", "reason": why}
                    for folder, why in sorted(model.refused.items())
                )
        return rows

    async def load(self, name: str) -> None:
        """Load (or reload) `name` from the models dir now. Raises NotFound when it has no
        folder, BadRequest (Triton's status) with the reasons when no version of it is ready
        afterwards, Conflict when an unload that arrived later overtook it (docs/lifecycle.md:
        the later call wins)."""
        self.require_enabled()
        await self.lifecycle.load_model(name)
        model = self.registry.models.get(name)
        if model is None or not model.versions:
            raise NotFound(
                f"no model folder {name}/ in the models dir; models there: "
                f"{', '.join(self.registry.names) or 'none'}"
            )
        if not any(e.state is ModelState.READY for e in model.versions.values()):
            reasons = "; ".join(
                f"version {v}: {e.reason}" if v else str(e.reason)
                for v, e in sorted(model.versions.items())
                if e.reason
            )
            raise BadRequest(f"failed to load model {name}: {reasons or 'no version is ready'}")

    async def unload(self, name: str) -> None:
        """Unload every version of `name` (raises NotFound); returns when they are unloaded
        (requests in flight finish first). Raises Conflict while the models dir is polled."""
        self.require_enabled()
        if self.polled:
            raise Conflict(
                f"model {name} cannot be unloaded while the models dir is polled "
                "(SYNERGY_MODEL_POLL_S > 0): remove its folder instead, or set "
                "SYNERGY_MODEL_POLL_S=0 to control models explicitly"
            )
        await self.lifecycle.unload(name)
