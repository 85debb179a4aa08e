"""The registry: every model version the server holds, by model name and version number.

Per model (`ServedModel`): the config in force, its version policy, the versions, and a
`Router` (`app.repository.routing`) rebuilt whenever a version's state or the config changes,
so that choosing the version of a request is a lookup (labels, the traffic split, the shadow).
The registry is filled from scans (`app.repository.scan`) and changed by the lifecycle
(`app.repository.lifecycle`): health endpoints answer while versions load, and readiness says
which model is loading, ready or failed, and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import NotFound, Unavailable
from app.repository.config import ModelConfig, VersionPolicy
from app.repository.routing import Router
from app.repository.scan import KnownVersion, scan_entries, scan_repository
from app.repository.versions import CardedVersion, ModelEntry, ModelState, ServedVersion

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ServedModel:
    """One model: the config in force, its policy, its versions and its router."""

    name: str
    policy: VersionPolicy
    config: ModelConfig = field(default_factory=ModelConfig)
    config_error: str | None = None
    versions: dict[int, ModelEntry] = field(default_factory=dict)
    # Version folders refused at scan (outside the version range): folder name -> reason.
    refused: dict[str, str] = field(default_factory=dict)
    router: Router = field(default_factory=lambda: Router(None, [], {}, None))
    # The config that routes (labels, traffic, shadow): `config` with the promotion decisions
    # from the store laid over it (app.repository.promotion); None: `config` itself.
    effective: ModelConfig | None = None
    # Unloaded through the repository API: scans leave it alone until it is loaded again.
    unloaded: bool = False
    # Counted by readiness: present at start-up, or ready once since. A model that appears
    # later and fails never takes the replica out of service.
    required: bool = True

    def refused_status(self) -> list[dict[str, Any]]:
        """The refused version folders, as readiness lists failed versions: version 0 (as
        for a model-level failure: no version number) and the folder's name."""
        return [
            {
                "name": self.name,
                "version": 0,
                "folder": folder,
                "state": ModelState.FAILED.value,
                "reason": why,
            }
            for folder, why in sorted(self.refused.items())
        ]

    @property
    def routing(self) -> ModelConfig:
        """The config requests are routed by: config.json's with the decisions laid over."""
        return self.effective if self.effective is not None else self.config

    def status(self) -> dict[str, Any]:
        """Config, labels and policy for the listings (labels, traffic and shadow as routed,
        promotion decisions included)."""
        routing = self.routing
        status: dict[str, Any] = {
            "version_policy": self.policy.to_json(),
            "version_labels": dict(routing.labels),
        }
        if routing.traffic:
            status["traffic"] = dict(routing.traffic)
        if routing.shadow is not None:
            status["shadow"] = routing.shadow
        if self.effective is not None:
            status["promotion_override"] = True
        if self.config_error:
            status["config_error"] = self.config_error
        if self.refused:
            status["refused_folders"] = dict(self.refused)
        if self.unloaded:
            status["unloaded"] = True
        return status


class ModelRegistry:
    """All model versions of the server, by name and version.

    Changed only on the event loop (the lifecycle applies scans there), so readers on the loop
    see a consistent state without locks; worker threads read entries they were handed.
    """

    def __init__(self, entries: list[ModelEntry], policy: VersionPolicy | None = None) -> None:
        self.policy = policy or VersionPolicy()
        self.models: dict[str, ServedModel] = {}
        # Called (on the loop) after any change of versions, states or configs: the OpenAPI
        # document is rebuilt, caches of retired versions dropped.
        self.listeners: list[Callable[[], None]] = []
        # The promotion decisions' overlay (app.repository.promotion): a model -> the config
        # its router follows, or None for config.json's own.
        self.overlay: Callable[[ServedModel], ModelConfig | None] | None = None
        # The versions in order, and the names of the models that have versions: computed
        # when the set of versions changes (`add`, `remove`), not on every read.
        self._entries: tuple[ModelEntry, ...] = ()
        self._names: list[str] = []
        for entry in entries:
            self.add(entry)
        for name in self.models:
            self.refresh(name)

    @classmethod
    def scan(cls, models_dir: Path, policy: VersionPolicy) -> ModelRegistry:
        """The registry of a first scan: every model with its config and versions."""
        registry = cls([], policy)
        for scan in (scan_repository(models_dir, policy) or {}).values():
            for entry in scan_entries(scan):
                if entry.version == 0:
                    log.error("model %s failed: %s", entry.name, entry.reason)
                model = registry.add(entry, scan.config)
                model.policy, model.config_error = scan.policy, scan.config_error
                model.refused = dict(scan.refused)
            for why in scan.refused.values():
                log.error("model %s: %s", scan.name, why)
            if scan.config_error:
                log.error("model %s: %s; serving with the defaults", scan.name, scan.config_error)
        for name in registry.models:
            registry.refresh(name)
        return registry

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.entries)

    @property
    def entries(self) -> tuple[ModelEntry, ...]:
        """Every version of every model, by name then version (a snapshot: worker threads
        read it while the loop changes the registry)."""
        return self._entries

    @property
    def names(self) -> list[str]:
        """Names of the models that have versions (loaded or not), sorted."""
        return list(self._names)

    def _reorder(self) -> None:
        """Recompute the order after the set of versions changed."""
        models = sorted(self.models.items())
        self._entries = tuple(
            entry for _, model in models for _, entry in sorted(model.versions.items())
        )
        self._names = [name for name, model in models if model.versions]

    def model(self, name: str) -> ServedModel:
        """One model's record (raises NotFound)."""
        model = self.models.get(name)
        if model is None or not model.versions:
            if model is not None and model.unloaded:
                raise NotFound(
                    f"model {name!r} is unloaded; load it with POST "
                    f"/v2/repository/models/{name}/load"
                )
            raise NotFound(
                f"unknown model {name!r}; available models: {', '.join(self.names) or 'none'}"
            )
        return model

    def add(self, entry: ModelEntry, config: ModelConfig | None = None) -> ServedModel:
        """Admit a version (its model record is made on first sight)."""
        model = self.models.get(entry.name)
        if model is None:
            model = self.models[entry.name] = ServedModel(entry.name, self.policy)
            if config is not None:
                model.config, model.policy = config, config.policy(self.policy)
        model.versions[entry.version] = entry
        self._reorder()
        return model

    def remove(self, entry: ModelEntry) -> None:
        """Drop a version (retired and unloaded, or failed and out of the policy)."""
        model = self.models.get(entry.name)
        if model is not None and model.versions.get(entry.version) is entry:
            del model.versions[entry.version]
            if not model.versions and not model.unloaded:
                del self.models[entry.name]
            self._reorder()

    def refresh(self, name: str) -> None:
        """Rebuild a model's router after its versions' states or its config changed."""
        model = self.models.get(name)
        if model is None:
            return
        model.effective = self.overlay(model) if self.overlay is not None else None
        config = model.routing
        ready = {
            v: e.served
            for v, e in model.versions.items()
            if e.state is ModelState.READY and e.served is not None
        }
        if ready:
            model.required = True
        targets = []
        for key, weight in config.traffic.items():
            served = ready.get(config.version_of(key))
            if served is not None and weight > 0:
                targets.append((served, weight, key if key in config.labels else ""))
        default = ready[max(ready)] if ready and not targets else None
        shadow = None
        if config.shadow is not None:
            shadow = ready.get(config.version_of(config.shadow))
        router = Router(default, targets, dict(config.labels), shadow)
        router.continue_from(model.router)
        model.router = router

    def changed(self) -> None:
        """Tell the listeners that the repository changed."""
        for listener in self.listeners:
            try:
                listener()
            except Exception:  # a listener's failure never stops the repository
                log.exception("repository listener %r failed", listener)

    def versions(self, name: str) -> dict[int, ModelEntry]:
        """Versions of one model (raises NotFound)."""
        return self.model(name).versions

    def find(self, name: str, version: int | None = None) -> ModelEntry:
        """The entry for name/version, whatever its state (raises NotFound).

        Without a version: the newest ready version, else the newest one (to report its state).
        """
        model = self.model(name)
        versions = model.versions
        if version is None:
            ready = [v for v, e in versions.items() if e.state is ModelState.READY]
            return versions[max(ready) if ready else max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise NotFound(
                f"model {name!r} has no version {version} served; served versions: "
                f"{', '.join(str(v) for v in sorted(versions))} (version policy: "
                f"{model.policy.describe()})"
            ) from None

    def by_label(self, name: str, label: str) -> ModelEntry:
        """The version a label names (raises NotFound for an unknown label)."""
        model = self.model(name)
        version = model.routing.labels.get(label)
        if version is None:
            known = ", ".join(sorted(model.routing.labels)) or "none (config.json sets them)"
            raise NotFound(f"model {name!r} has no label {label!r}; labels: {known}")
        return self.find(name, version)

    def route(self, name: str, key: str | None) -> tuple[ServedVersion, str]:
        """The version for a request that names none, and the traffic key that chose it
        (raises NotFound, Unavailable)."""
        model = self.models.get(name)
        if model is not None:
            served, label = model.router.pick(key)
            if served is not None:
                return served, label
        return self.get_ready(name), ""

    def get_ready(self, name: str, version: int | None = None) -> ServedVersion:
        """The version that can serve now (raises NotFound, or Unavailable with the reason)."""
        entry = self.find(name, version)
        return self.check_ready(entry)

    def check_ready(self, entry: ModelEntry) -> ServedVersion:
        """`entry`'s served version if it can serve now (raises NotFound, or Unavailable
        with the reason)."""
        name = entry.name
        if entry.state is ModelState.READY and entry.served is not None:
            return entry.served
        if entry.state is ModelState.LOADING:
            raise Unavailable(
                f"model {name} version {entry.version} is still loading; retry "
                "shortly (see /health/ready)"
            )
        if entry.state is ModelState.STOPPED:
            raise Unavailable(f"model {name} is shutting down; retry on another replica")
        if entry.state is ModelState.UNLOADING and self.model(name).unloaded:
            raise NotFound(
                f"model {name!r} is unloaded; load it with POST /v2/repository/models/{name}/load"
            )
        if entry.state is ModelState.UNLOADING:
            raise NotFound(
                f"model {name} version {entry.version} was retired; served versions: "
                + ", ".join(
                    str(v)
                    for v, e in sorted(self.versions(name).items())
                    if e.state is ModelState.READY
                )
            )
        raise Unavailable(
            f"model {name} version {entry.version} failed to load: {entry.reason}", retry_after_s=30
        )

    def carded(self, name: str, version: int | None = None) -> CardedVersion:
        """name/version when its card is valid, whatever its state (NotFound; Unavailable
        when the card is missing or invalid, with the reason)."""
        entry = self.find(name, version)
        if entry.carded is None:
            raise Unavailable(
                f"model {name} version {entry.version} has no valid card: {entry.reason}",
                retry_after_s=30,
            )
        return entry.carded

    def serving(self) -> bool:
        """True when every model readiness counts has a ready version (a version that failed
        while another serves, or a new model that failed, does not count)."""
        required = [m for m in self.models.values() if m.required and not m.unloaded]
        return bool(required) and all(
            any(e.state is ModelState.READY for e in m.versions.values()) for m in required
        )

    def known(self) -> dict[tuple[str, int], KnownVersion]:
        """What a scan needs to know of the versions held."""
        return {(e.name, e.version): KnownVersion(e.state, e.fingerprint) for e in self.entries}
