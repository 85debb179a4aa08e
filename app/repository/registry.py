"""The model repository: discovers `models/<name>/<version>/` and holds every version's state.

Discovery only reads cards, so it is cheap and happens when the app is built (the API and its
docs list every model). Loading (`app.repository.lifecycle`) happens in the lifespan, in the
background: health endpoints answer meanwhile, and readiness says which model is loading,
ready or failed, and why. A model whose card is missing or invalid, or whose files do not
match the card's sha256, is failed; the others serve.
"""

from __future__ import annotations

import enum
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from app.adapters import InputAdapter
from app.batching import Batcher
from app.errors import NotFound, Unavailable
from app.metrics import ServingStats
from app.runtimes.base import Model
from app.schemas.card import CARD_FILENAME, MODEL_NAME_PATTERN, ModelCard, verify_artifacts

log = logging.getLogger(__name__)


class ModelState(enum.StrEnum):
    """Life of one model version in the server."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
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


def _version_of(folder: Path) -> int | None:
    text = folder.name
    return int(text) if text.isdigit() and int(text) > 0 and not text.startswith("0") else None


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model the server loads and serves (TF Serving's term).

    Only "latest N" today: the N highest version numbers among the model's version folders.
    A per-model policy (all, specific versions) slots in as another `kind` of this type.
    """

    kind: Literal["latest"] = "latest"
    num_versions: int = 1

    def select(self, versions: list[int]) -> list[int]:
        """The versions to serve, ascending, out of the candidates."""
        return sorted(versions)[-self.num_versions :]

    def describe(self) -> str:
        """For messages: what the policy serves."""
        return f"the latest {self.num_versions} version(s)"


class RepositoryFileError(Exception):
    """A file of the repository that the server refuses to read; the message is safe to show
    (the file's name inside its model folder, the kind of problem; no paths)."""


def read_repository_file(path: Path, root: Path) -> bytes:
    """The bytes of a regular file inside `root` (the resolved models dir).

    Refuses a link that leaves `root`, anything but a regular file (a FIFO would block the
    read forever, a device could be endless) and files that cannot be read, with a
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
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise RepositoryFileError(f"{name} is not a regular file; refusing it")
        chunks = []
        while chunk := os.read(descriptor, 1 << 20):
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


def discover(models_dir: Path, policy: VersionPolicy | None = None) -> list[ModelEntry]:
    """Find `<models_dir>/<name>/<version>/` folders and read their cards (no model loading).

    Folders that look like model versions but cannot be served come back FAILED with the
    reason, so readiness reports them instead of silently ignoring them. An entry that
    cannot be read (a `lost+found` with mode 000) fails alone: the rest serve. Empty version
    folders (a copy not started yet) are skipped. Of the remaining versions, only those the
    `policy` selects are entries at all: not loaded, not served.
    """
    import re

    policy = policy or VersionPolicy()
    entries: list[ModelEntry] = []
    if not models_dir.is_dir():
        log.error("models dir %s does not exist", models_dir)
        return entries
    root = models_dir.resolve()
    listing = _list_dir(models_dir)
    if isinstance(listing, str):
        log.error("models dir %s cannot be read (%s)", models_dir, listing)
        return entries
    for model_dir in listing:
        if model_dir.name.startswith(".") or not _is_dir(model_dir):
            continue
        name = model_dir.name
        if not re.fullmatch(MODEL_NAME_PATTERN, name):
            log.warning("skipping %s: not a valid model name (%s)", model_dir, MODEL_NAME_PATTERN)
            continue
        children = _list_dir(model_dir)
        if isinstance(children, str):
            entry = ModelEntry(name, 0, model_dir, None)
            entry.fail(f"the model folder {name}/ cannot be read ({children})")
            entries.append(entry)
            continue
        candidates = {
            v: p
            for p in children
            if _is_dir(p) and (v := _version_of(p)) is not None and not _is_empty_dir(p)
        }
        if not candidates:
            entry = ModelEntry(name, 0, model_dir, None)
            entry.fail(f"no version folder (models/{name}/<integer>/) with a {CARD_FILENAME}")
            entries.append(entry)
            continue
        served = policy.select(list(candidates))
        if len(served) < len(candidates):
            log.info(
                "model %s: serving versions %s of %d (version policy: %s)",
                name,
                served,
                len(candidates),
                policy.describe(),
            )
        for version in served:
            entries.append(_read_version(name, version, candidates[version], root))
    return entries


def _read_version(name: str, version: int, folder: Path, root: Path) -> ModelEntry:
    entry = ModelEntry(name, version, folder, None)
    if not folder.resolve().is_relative_to(root):
        entry.fail("the version folder links outside the models dir; refusing it")
        return entry
    try:
        entry.card = ModelCard.model_validate_json(
            read_repository_file(folder / CARD_FILENAME, root)
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
    if isinstance(exc, ArtifactMismatch):
        return f"loading failed: {exc}"
    files = ", ".join(sorted(card.artifacts)) or "its files"
    return (
        f"loading failed: {card.framework} could not load the model from {files}; the "
        "server log has the details"
    )


class ArtifactMismatch(RuntimeError):
    """The artifact loads but does not behave as the card says (message safe to show)."""


class ModelRegistry:
    """All model versions of the server, by name and version."""

    def __init__(self, entries: list[ModelEntry], policy: VersionPolicy | None = None) -> None:
        self.entries = entries
        self.policy = policy or VersionPolicy()
        self._by_name: dict[str, dict[int, ModelEntry]] = {}
        for entry in entries:
            self._by_name.setdefault(entry.name, {})[entry.version] = entry

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.entries)

    @property
    def names(self) -> list[str]:
        """Model names, sorted."""
        return sorted(self._by_name)

    def versions(self, name: str) -> dict[int, ModelEntry]:
        """Versions of one model (raises NotFound)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise NotFound(
                f"unknown model {name!r}; available models: {', '.join(self.names) or 'none'}"
            ) from None

    def find(self, name: str, version: int | None = None) -> ModelEntry:
        """The entry for name/version, whatever its state (raises NotFound).

        Without a version: the newest ready version, else the newest one (to report its state).
        """
        versions = self.versions(name)
        if version is None:
            ready = [v for v, e in versions.items() if e.state is ModelState.READY]
            return versions[max(ready) if ready else max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise NotFound(
                f"model {name!r} has no version {version} served; served versions: "
                f"{', '.join(str(v) for v in sorted(versions))} (this server serves "
                f"{self.policy.describe()} of each model)"
            ) from None

    def get_ready(self, name: str, version: int | None = None) -> ModelEntry:
        """The entry that can serve now (raises NotFound, or Unavailable with the reason)."""
        entry = self.find(name, version)
        if entry.state is ModelState.READY:
            return entry
        if entry.state is ModelState.LOADING:
            raise Unavailable(
                f"model {name} version {entry.version} is still loading; retry "
                "shortly (see /health/ready)"
            )
        if entry.state is ModelState.STOPPED:
            raise Unavailable(f"model {name} is shutting down; retry on another replica")
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
        return bool(self.entries) and all(e.state is ModelState.READY for e in self.entries)


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
