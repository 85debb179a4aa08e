"""Scanning the models dir: what model folders, version folders, cards and configs it holds.

A scan only reads cards and each model's `config.json`, so it is cheap: it happens when the
app is built (the API and its docs list every model) and then every SYNERGY_MODEL_POLL_S
seconds. It runs on a worker thread and returns `ModelScan`s; the lifecycle applies them to
the registry on the event loop. A version whose card is missing or invalid is FAILED with the
reason; the others go on to load.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from app.repository.config import (
    CONFIG_FILENAME,
    ConfigError,
    ModelConfig,
    VersionPolicy,
    check_against_policy,
    check_selection,
    parse_config,
)
from app.repository.files import (
    MAX_CARD_BYTES,
    MAX_CONFIG_BYTES,
    RepositoryFileError,
    folder_fingerprint,
    is_dir,
    is_empty_dir,
    list_dir,
    read_repository_file,
)
from app.repository.versions import ModelEntry, ModelState
from app.schemas.card import CARD_FILENAME, MODEL_NAME_PATTERN, ModelCard
from app.schemas.versions import VERSION_RANGE, is_version_folder_name, parse_version

log = logging.getLogger(__name__)


def refused_folder_reason(folder_name: str) -> str:
    """Why a version folder whose number is outside the version range is not served."""
    shown = folder_name if len(folder_name) <= 40 else folder_name[:40] + "..."
    return (
        f"version folder {shown}/ is outside the version range ({VERSION_RANGE}); rename it "
        "to a version in the range"
    )


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
    listing = list_dir(models_dir)
    if isinstance(listing, str):
        log.error("models dir %s cannot be read (%s)", models_dir, listing)
        return None
    scans: dict[str, ModelScan] = {}
    for model_dir in listing:
        name = model_dir.name
        if name.startswith(".") or (only is not None and name != only) or not is_dir(model_dir):
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
    children = list_dir(model_dir)
    if isinstance(children, str):
        scan.problem = f"the model folder {name}/ cannot be read ({children})"
        return scan
    for path in children:
        if not is_version_folder_name(path.name) or not is_dir(path):
            continue
        version = parse_version(path.name)
        if version is None:
            scan.refused[path.name] = refused_folder_reason(path.name)
        elif not is_empty_dir(path):
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
        fingerprint = folder_fingerprint(folder)
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
