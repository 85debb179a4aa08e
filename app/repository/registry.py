"""The model repository: scans `models/<name>/<version>/` and holds every version's state.

A scan only reads cards and each model's `config.json`, so it is cheap: it happens when the app
is built (the API and its docs list every model) and then every SYNERGY_MODEL_POLL_S seconds.
Loading (`app.repository.lifecycle`) happens in the background: health endpoints answer
meanwhile, and readiness says which model is loading, ready or failed, and why. A version whose
card is missing or invalid, or whose files do not match the card's sha256, is failed; the
others serve.

Per model (`ServedModel`): the config in force, its version policy, the versions, and a
`Router` rebuilt whenever a version's state or the config changes, so that choosing the
version of a request is a lookup (labels, the traffic split, the shadow).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.adapters import InputAdapter
from app.batching import Batcher
from app.errors import NotFound, Unavailable
from app.metrics import ServingStats
from app.repository.config import (
    CONFIG_FILENAME,
    ConfigError,
    ModelConfig,
    VersionPolicy,
    check_against_policy,
    check_selection,
    parse_config,
)
from app.runtimes import UntrustedArtifact
from app.runtimes.base import Model
from app.schemas.card import CARD_FILENAME, MODEL_NAME_PATTERN, ModelCard, verify_artifacts
from app.schemas.versions import VERSION_RANGE, is_version_folder_name, parse_version

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


@dataclass(eq=False)
class ModelEntry:
    """One model version: its card and adapter, and once loaded its runtime and batcher."""

    name: str
    version: int
    folder: Path
    card: ModelCard | None
    state: ModelState = ModelState.LOADING
    reason: str | None = None
    model: Model | None = None
    adapter: InputAdapter | None = None
    batcher: Batcher | None = None
    load_seconds: float | None = None
    stats: ServingStats = field(default_factory=ServingStats)
    # What the folder held when the card was read (names, sizes, mtimes): a failed version is
    # tried again only when its files change.
    fingerprint: str = ""
    # Requests that selected this version and have not finished: a retired version is
    # unloaded only when none is left.
    leases: int = 0
    _idle: asyncio.Event | None = None

    def acquire(self) -> None:
        """A request (or a shadow copy) uses this version until `release`."""
        self.leases += 1

    def release(self) -> None:
        """The request that acquired this version has finished."""
        self.leases -= 1
        if self.leases <= 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request uses this version (at most `timeout_s`); False on timeout."""
        if self.leases <= 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def ready(self) -> None:
        """Mark the version serving (loaded, warm, its batcher running)."""
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
        if self.model is not None and self.state is ModelState.READY:
            status["device"] = self.model.device
        return status


def refused_folder_reason(folder_name: str) -> str:
    """Why a version folder whose number is outside the version range is not served."""
    shown = folder_name if len(folder_name) <= 40 else folder_name[:40] + "..."
    return (
        f"version folder {shown}/ is outside the version range ({VERSION_RANGE}); rename it "
        "to a version in the range"
    )


class RepositoryFileError(Exception):
    """A file of the repository that the server refuses to read; the message is safe to show
    (the file's name inside its model folder, the kind of problem; no paths)."""


# What a scan reads whole, at most (docs/security.md): a scan runs every SYNERGY_MODEL_POLL_S,
# so a 300 MB config.json must be refused from its size, never read (a real one is a few KB).
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CARD_BYTES = 4 * 1024 * 1024
MAX_REPOSITORY_FILE_BYTES = 16 * 1024 * 1024


def read_repository_file(
    path: Path, root: Path, max_bytes: int = MAX_REPOSITORY_FILE_BYTES
) -> bytes:
    """The bytes of a regular file inside `root` (the resolved models dir).

    Refuses a link that leaves `root`, anything but a regular file (a FIFO would block the
    read forever, a device could be endless), a file over `max_bytes` (from its size, before
    reading; and while reading, should it grow) and files that cannot be read, with a
    RepositoryFileError that names only `path.name`.
    """
    name = path.name
    try:
        inside = path.resolve().is_relative_to(root)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise RepositoryFileError(f"{name} is a link that cannot be followed") from exc
    if not inside:
        raise RepositoryFileError(f"{name} links outside the models dir; refusing it")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RepositoryFileError(f"{name} cannot be read ({_os_problem(exc)})") from exc
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise RepositoryFileError(f"{name} is not a regular file; refusing it")
        too_large = RepositoryFileError(
            f"{name} is over the limit of {max_bytes} bytes for this file; refusing it"
        )
        if status.st_size > max_bytes:
            raise too_large
        chunks = []
        size = 0
        while chunk := os.read(descriptor, 1 << 20):
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise RepositoryFileError(f"{name} cannot be read ({_os_problem(exc)})") from exc
    finally:
        os.close(descriptor)


def _os_problem(exc: OSError) -> str:
    """The kind of an OS error in words, without the path that str(exc) would carry."""
    return (exc.strerror or type(exc).__name__).lower()


def _list_dir(folder: Path) -> list[Path] | str:
    """The entries of a folder, sorted; or what is wrong with it, in words."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        return _os_problem(exc)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _is_empty_dir(path: Path) -> bool:
    try:
        return next(path.iterdir(), None) is None
    except OSError:
        return False


@dataclass
class ModelScan:
    """What one scan found for one model folder (made on a worker thread, applied on the
    event loop by the lifecycle)."""

    name: str
    folder: Path
    # Model-level problem (unreadable folder, no version): a FAILED version-0 entry shows it.
    problem: str | None = None
    config: ModelConfig | None = None  # the config in force after this scan
    config_error: str | None = None  # why config.json was not taken (the previous stays)
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    candidates: dict[int, Path] = field(default_factory=dict)  # non-empty version folders
    # Folders named as versions but outside the version range: folder name -> reason.
    refused: dict[str, str] = field(default_factory=dict)
    served: list[int] = field(default_factory=list)  # what the policy selects
    # Versions to (re)admit: new to the registry, or failed before and changed since.
    entries: dict[int, ModelEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class KnownVersion:
    """What the registry holds of a version, for a scan to decide what is new."""

    state: ModelState
    fingerprint: str


def scan_repository(
    models_dir: Path,
    default_policy: VersionPolicy,
    configs: dict[str, ModelConfig | None] | None = None,
    known: dict[tuple[str, int], KnownVersion] | None = None,
    only: str | None = None,
) -> dict[str, ModelScan] | None:
    """Scan `<models_dir>/<name>/<version>/` folders and each model's config.json.

    `configs`: the config in force per model (an invalid new config.json leaves it in force);
    `known`: the versions the registry holds (only new versions, and failed ones whose files
    changed, have their cards read); `only`: scan one model. Returns None when the models dir
    itself cannot be listed (a transient mount problem must not retire every model).
    Folders whose names start with "." are ignored: copy a version in as `.3.tmp/` and
    rename it to `3/` so a scan never sees it half-written.
    """
    configs = configs or {}
    known = known or {}
    if not models_dir.is_dir():
        log.error("models dir %s does not exist", models_dir)
        return None
    root = models_dir.resolve()
    listing = _list_dir(models_dir)
    if isinstance(listing, str):
        log.error("models dir %s cannot be read (%s)", models_dir, listing)
        return None
    scans: dict[str, ModelScan] = {}
    for model_dir in listing:
        name = model_dir.name
        if name.startswith(".") or (only is not None and name != only) or not _is_dir(model_dir):
            continue
        if not re.fullmatch(MODEL_NAME_PATTERN, name):
            log.warning("skipping %s: not a valid model name (%s)", model_dir, MODEL_NAME_PATTERN)
            continue
        scans[name] = _scan_model(name, model_dir, root, default_policy, configs.get(name), known)
    return scans


def _scan_model(
    name: str,
    model_dir: Path,
    root: Path,
    default_policy: VersionPolicy,
    previous: ModelConfig | None,
    known: dict[tuple[str, int], KnownVersion],
) -> ModelScan:
    scan = ModelScan(name, model_dir, config=previous)
    children = _list_dir(model_dir)
    if isinstance(children, str):
        scan.problem = f"the model folder {name}/ cannot be read ({children})"
        return scan
    for path in children:
        if not is_version_folder_name(path.name) or not _is_dir(path):
            continue
        version = parse_version(path.name)
        if version is None:
            scan.refused[path.name] = refused_folder_reason(path.name)
        elif not _is_empty_dir(path):
            scan.candidates[version] = path
    if not scan.candidates:
        scan.problem = f"no version folder (models/{name}/<integer>/) with a {CARD_FILENAME}"
        if scan.refused:
            scan.problem += "; " + "; ".join(scan.refused.values())
        return scan
    candidates = list(scan.candidates)
    config, scan.config_error = _read_config(model_dir, root, candidates, default_policy)
    if config is not None:
        scan.config = config
    scan.policy = scan.config.policy(default_policy) if scan.config else default_policy
    scan.served = scan.policy.select(candidates)
    if len(scan.served) < len(candidates):
        log.debug(
            "model %s: serving versions %s of %d (version policy: %s)",
            name,
            scan.served,
            len(candidates),
            scan.policy.describe(),
        )
    for version in scan.served:
        folder = scan.candidates[version]
        fingerprint = _fingerprint(folder)
        held = known.get((name, version))
        if held is None or (held.state is ModelState.FAILED and held.fingerprint != fingerprint):
            entry = _read_version(name, version, folder, root)
            entry.fingerprint = fingerprint
            scan.entries[version] = entry
    return scan


def _read_config(
    model_dir: Path, root: Path, candidates: list[int], default_policy: VersionPolicy
) -> tuple[ModelConfig | None, str | None]:
    """(the config.json to put in force, or None to keep the one in force; why not)."""
    try:
        data = read_repository_file(model_dir / CONFIG_FILENAME, root, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return ModelConfig(), None  # no file: the defaults
    except RepositoryFileError as exc:
        return None, str(exc)
    try:
        config = parse_config(data)
        check_against_policy(config, check_selection(config.policy(default_policy), candidates))
    except ConfigError as exc:
        return None, str(exc)
    return config, None


def _fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of a version folder's files (not their bytes)."""
    digest = hashlib.blake2b(digest_size=12)
    try:
        for path in sorted(folder.rglob("*")):
            info = path.lstat()
            digest.update(f"{path.relative_to(folder)}:{info.st_size}:{info.st_mtime_ns};".encode())
    except OSError as exc:
        digest.update(_os_problem(exc).encode())
    return digest.hexdigest()


def discover(models_dir: Path, policy: VersionPolicy | None = None) -> list[ModelEntry]:
    """The model versions a first scan finds (no model loading), as entries.

    Folders that look like model versions but cannot be served come back FAILED with the
    reason, so readiness reports them instead of silently ignoring them. An entry that
    cannot be read (a `lost+found` with mode 000) fails alone: the rest serve. Empty version
    folders (a copy not started yet) are skipped. Of the remaining versions, only those the
    version policy (config.json's, else `policy`) selects are entries at all.
    """
    scans = scan_repository(models_dir, policy or VersionPolicy())
    entries = [entry for scan in (scans or {}).values() for entry in scan_entries(scan)]
    for entry in entries:
        if entry.version == 0:
            log.error("model %s failed: %s", entry.name, entry.reason)
    return entries


def scan_entries(scan: ModelScan) -> list[ModelEntry]:
    """A scan's entries to admit, with a FAILED version-0 entry for a model-level problem."""
    if scan.problem is not None:
        # Not entry.fail(): a scan repeats every few seconds, the registry logs what is new.
        return [ModelEntry(scan.name, 0, scan.folder, None, ModelState.FAILED, scan.problem)]
    return [scan.entries[v] for v in sorted(scan.entries)]


def _read_version(name: str, version: int, folder: Path, root: Path) -> ModelEntry:
    entry = ModelEntry(name, version, folder, None)
    if not folder.resolve().is_relative_to(root):
        entry.fail("the version folder links outside the models dir; refusing it")
        return entry
    try:
        entry.card = ModelCard.model_validate_json(
            read_repository_file(folder / CARD_FILENAME, root, MAX_CARD_BYTES)
        )
    except FileNotFoundError:
        entry.fail(f"{CARD_FILENAME} is missing; every model version needs its card")
        return entry
    except RepositoryFileError as exc:
        entry.fail(str(exc))
        return entry
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "card"
        entry.fail(
            f"{CARD_FILENAME} is invalid: {where}: {first['msg']} ({exc.error_count()} problem(s))"
        )
        return entry
    if entry.card.name != name or entry.card.version != version:
        entry.fail(
            f"the card says {entry.card.name} version {entry.card.version} but the folder "
            f"is {name}/{version}"
        )
    return entry


def load_failure_reason(card: ModelCard, exc: BaseException) -> str:
    """Why a model version failed to load, in the project's words: the server's own checks
    say what they found; a framework's exception (its text can hold paths and internals)
    becomes the files it was loading, with the details in the server log."""
    if isinstance(exc, ArtifactMismatch | UntrustedArtifact):
        return f"loading failed: {exc}"
    files = ", ".join(sorted(card.artifacts)) or "its files"
    return (
        f"loading failed: {card.framework} could not load the model from {files}; the "
        "server log has the details"
    )


class ArtifactMismatch(RuntimeError):
    """The artifact loads but does not behave as the card says (message safe to show)."""


class Router:
    """Where a model's requests go, precomputed from its ready versions and config.

    `pick(key)` chooses the version of a request that names neither a version nor a label:
    by the config's traffic weights when it has them (over the ready targets only: a canary
    that is still loading or failed gets no share), else the newest ready version. The
    split is deterministic: with a routing key (the `X-Routing-Key` header, e.g. a user id)
    the key's hash picks, so a caller stays on one version; without one, smooth weighted
    round robin (nginx's), so any run of requests matches the weights within one request.
    """

    __slots__ = ("_current", "default", "default_label", "labels", "shadow", "targets", "total")

    def __init__(
        self,
        default: ModelEntry | None,
        targets: list[tuple[ModelEntry, float, str]],
        labels: dict[str, int],
        shadow: ModelEntry | None,
    ) -> None:
        # One target: no split to compute; the hot path's case.
        self.default = default if not targets else (targets[0][0] if len(targets) == 1 else None)
        self.default_label = targets[0][2] if len(targets) == 1 else ""
        self.targets = targets if len(targets) > 1 else []
        self.total = sum(weight for _, weight, _ in self.targets)
        self.labels = labels
        self.shadow = shadow
        self._current = [0.0] * len(self.targets)

    def pick(self, key: str | None) -> tuple[ModelEntry | None, str]:
        """(the version to serve, the traffic key that chose it or "")."""
        if self.default is not None or not self.targets:
            return self.default, self.default_label
        if key is not None:
            digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
            point = int.from_bytes(digest) / 2.0**64 * self.total
            for entry, weight, name in self.targets:
                point -= weight
                if point < 0:
                    return entry, name
            return self.targets[-1][0], self.targets[-1][2]
        best = 0
        for index, (_, weight, _) in enumerate(self.targets):
            self._current[index] += weight
            if self._current[index] > self._current[best]:
                best = index
        self._current[best] -= self.total
        entry, _, name = self.targets[best]
        return entry, name

    def continue_from(self, previous: Router) -> None:
        """Carry the round robin's position over from the router this one replaces when the
        split is the same (same versions, same weights): a rescan rebuilds every router, and
        restarting the round at each one would send nearly every request of a model with
        less than one request per scan to the first target."""
        same = len(self.targets) == len(previous.targets) and all(
            a is c and b == d
            for (a, b, _), (c, d, _) in zip(self.targets, previous.targets, strict=True)
        )
        if same:
            self._current = list(previous._current)


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

    def label_of(self, version: int) -> str:
        """The first label naming `version`, or ""."""
        return next((k for k, v in self.routing.labels.items() if v == version), "")

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
    def entries(self) -> list[ModelEntry]:
        """Every version of every model, by name then version."""
        # list(...) first: a copy taken at once (worker threads read while the loop changes).
        return [
            entry
            for _, model in sorted(list(self.models.items()))
            for _, entry in sorted(list(model.versions.items()), key=lambda item: item[0])
        ]

    @property
    def names(self) -> list[str]:
        """Names of the models that have versions (loaded or not), sorted."""
        return sorted(name for name, model in self.models.items() if model.versions)

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
        return model

    def remove(self, entry: ModelEntry) -> None:
        """Drop a version (retired and unloaded, or failed and out of the policy)."""
        model = self.models.get(entry.name)
        if model is not None and model.versions.get(entry.version) is entry:
            del model.versions[entry.version]
            if not model.versions and not model.unloaded:
                del self.models[entry.name]

    def refresh(self, name: str) -> None:
        """Rebuild a model's router after its versions' states or its config changed."""
        model = self.models.get(name)
        if model is None:
            return
        model.effective = self.overlay(model) if self.overlay is not None else None
        config = model.routing
        ready = {v: e for v, e in model.versions.items() if e.state is ModelState.READY}
        if ready:
            model.required = True
        targets = []
        for key, weight in config.traffic.items():
            entry = ready.get(config.version_of(key))
            if entry is not None and weight > 0:
                targets.append((entry, weight, key if key in config.labels else ""))
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

    def route(self, name: str, key: str | None) -> tuple[ModelEntry, str]:
        """The version for a request that names none, and the traffic key that chose it
        (raises NotFound, Unavailable)."""
        model = self.models.get(name)
        if model is not None:
            entry, label = model.router.pick(key)
            if entry is not None:
                return entry, label
        return self.get_ready(name), ""

    def get_ready(self, name: str, version: int | None = None) -> ModelEntry:
        """The entry that can serve now (raises NotFound, or Unavailable with the reason)."""
        entry = self.find(name, version)
        return self.check_ready(entry)

    def check_ready(self, entry: ModelEntry) -> ModelEntry:
        """`entry` if it can serve now (raises NotFound, or Unavailable with the reason)."""
        name = entry.name
        if entry.state is ModelState.READY:
            return entry
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

    def carded(self, name: str, version: int | None = None) -> ModelEntry:
        """The entry for name/version when its card is valid (NotFound; Unavailable when the
        card is missing or invalid, with the reason)."""
        entry = self.find(name, version)
        if entry.card is None:
            raise Unavailable(
                f"model {name} version {entry.version} has no valid card: {entry.reason}",
                retry_after_s=30,
            )
        return entry

    def all_ready(self) -> bool:
        """True when every discovered version is loaded and warm."""
        entries = self.entries
        return bool(entries) and all(e.state is ModelState.READY for e in entries)

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


def verify(entry: ModelEntry) -> bool:
    """Check the artifact hashes against the card; mark the entry failed on any mismatch."""
    assert entry.card is not None
    started = time.perf_counter()
    problems = verify_artifacts(entry.card, entry.folder)
    if problems:
        entry.fail("artifact check failed: " + "; ".join(problems))
        return False
    log.debug("verified %s/%s in %.3fs", entry.name, entry.version, time.perf_counter() - started)
    return True
