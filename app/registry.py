"""The model repository: discovers `models/<name>/<version>/`, validates, loads and warms up.

Discovery only reads cards, so it is cheap and happens when the app is built (the API and its
docs list every model). Loading happens in the lifespan, in the background: health endpoints
answer meanwhile, and readiness says which model is loading, ready or failed, and why. A model
whose card is missing or invalid, or whose files do not match the card's sha256, is failed;
the others serve.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.batching import Batcher
from app.errors import NotFound, Unavailable
from app.metrics import ServingStats
from app.preprocessing.adapters import InputAdapter
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
    """One model version: its card, and once loaded its runtime, adapter and batcher."""

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


def discover(models_dir: Path) -> list[ModelEntry]:
    """Find `<models_dir>/<name>/<version>/` folders and read their cards (no model loading).

    Folders that look like model versions but cannot be served come back FAILED with the
    reason, so readiness reports them instead of silently ignoring them.
    """
    import re

    entries: list[ModelEntry] = []
    if not models_dir.is_dir():
        log.error("models dir %s does not exist", models_dir)
        return entries
    root = models_dir.resolve()
    for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        if model_dir.name.startswith("."):
            continue
        name = model_dir.name
        versions = [
            (v, p)
            for p in sorted(model_dir.iterdir())
            if p.is_dir() and (v := _version_of(p)) is not None
        ]
        if not re.fullmatch(MODEL_NAME_PATTERN, name):
            log.warning("skipping %s: not a valid model name (%s)", model_dir, MODEL_NAME_PATTERN)
            continue
        if not versions:
            entry = ModelEntry(name, 0, model_dir, None)
            entry.fail(f"no version folder (models/{name}/<integer>/) with a {CARD_FILENAME}")
            entries.append(entry)
            continue
        for version, folder in versions:
            entry = ModelEntry(name, version, folder, None)
            entries.append(entry)
            if not folder.resolve().is_relative_to(root):
                entry.fail("the version folder links outside the models dir; refusing it")
                continue
            try:
                entry.card = ModelCard.read(folder)
            except FileNotFoundError:
                entry.fail(f"{CARD_FILENAME} is missing; every model version needs its card")
                continue
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "card"
                entry.fail(
                    f"{CARD_FILENAME} is invalid: {where}: {first['msg']} "
                    f"({exc.error_count()} problem(s))"
                )
                continue
            except (OSError, UnicodeDecodeError) as exc:
                entry.fail(f"{CARD_FILENAME} cannot be read: {exc}")
                continue
            if entry.card.name != name or entry.card.version != version:
                entry.fail(
                    f"the card says {entry.card.name} version {entry.card.version} but the folder "
                    f"is {name}/{version}"
                )
    return entries


class ModelRegistry:
    """All model versions of the server, by name and version."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self.entries = entries
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
                f"model {name!r} has no version {version}; available versions: "
                f"{', '.join(str(v) for v in sorted(versions))}"
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
