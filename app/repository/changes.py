"""Applying a scan of the models dir (`app.repository.scan`) to the registry: new models and
versions, changed configs, versions that left the policy or the disk.

The registry changes here; what takes the lifecycle (admitting a version, queueing its load,
retiring a serving version once its requests finish) is handed back to it as `ScanChanges`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.metrics import Metrics
from app.repository.registry import ModelRegistry, ServedModel
from app.repository.scan import ModelScan, scan_entries
from app.repository.versions import ModelEntry, ModelState

log = logging.getLogger(__name__)


@dataclass
class ScanChanges:
    """What applying a scan asks of the lifecycle."""

    # Versions registered by this scan: the lifecycle admits each (its input kind, gauges).
    added: list[ModelEntry] = field(default_factory=list)
    # Of those, the versions to load.
    admitted: list[ModelEntry] = field(default_factory=list)
    # Serving versions whose folder is gone, and models whose folder is gone: to retire.
    retire: list[ModelEntry] = field(default_factory=list)
    gone: list[ServedModel] = field(default_factory=list)


def apply_scans(
    registry: ModelRegistry, scans: dict[str, ModelScan], only: str | None, metrics: Metrics
) -> ScanChanges:
    """Apply scans (of every model, or of `only`) to the registry, on the event loop: take
    changed configs, register new versions (and versions that failed and changed on disk),
    drop failed versions the policy no longer selects. What needs the lifecycle (admitting,
    loading, retiring) comes back as `ScanChanges`."""
    changes = ScanChanges()
    admitted = changes.admitted
    if only is None:
        for name in [n for n in registry.models if n not in scans]:
            log.info("model %s: its folder is gone; retiring it", name)
            changes.gone.append(registry.models[name])
    for name, scan in scans.items():
        model = registry.models.get(name)
        if model is not None and model.unloaded:
            continue
        if model is None:
            for entry in scan_entries(scan):
                _log_new(entry)
                model = registry.add(entry, scan.config)
                model.required = False
                changes.added.append(entry)
                admitted.append(entry)
            if model is not None:
                _take_config(model, scan, metrics)
            continue
        _take_config(model, scan, metrics)
        if scan.problem is not None:
            held = model.versions.get(0)
            if not [v for v in model.versions if v != 0] and (
                held is None or held.reason != scan.problem
            ):
                for entry in scan_entries(scan):
                    _log_new(entry)
                    registry.add(entry)
                    changes.added.append(entry)
            if scan.candidates or "cannot be read" in scan.problem:
                continue  # unreadable for now: what serves keeps serving
        if scan.candidates and 0 in model.versions:
            registry.remove(model.versions[0])
        for version, entry in scan.entries.items():
            held = model.versions.get(version)
            if held is not None and held.state is not ModelState.FAILED:
                continue
            if held is not None:
                registry.remove(held)
                log.info("model %s version %s changed on disk; trying it again", name, version)
            _log_new(entry)
            registry.add(entry)
            changes.added.append(entry)
            admitted.append(entry)
        for version, entry in list(model.versions.items()):
            if version == 0 or version in scan.served:
                continue
            if entry.state is ModelState.FAILED:
                registry.remove(entry)
            elif entry.state is ModelState.READY and version not in scan.candidates:
                log.info("model %s version %s: its folder is gone; retiring it", name, version)
                changes.retire.append(entry)
        registry.refresh(name)
    return changes


def _take_config(model: ServedModel, scan: ModelScan, metrics: Metrics) -> None:
    if scan.config is not None and scan.config is not model.config:
        if scan.config != model.config:
            log.info("model %s: serving config %s", model.name, scan.config.model_dump())
        model.config = scan.config
    model.policy = scan.policy
    for folder, why in scan.refused.items():
        if folder not in model.refused:
            log.error("model %s: %s", model.name, why)
    model.refused = dict(scan.refused)
    if scan.config_error != model.config_error:
        if scan.config_error is not None:
            log.error(
                "model %s: %s; the previous config stays in force",
                model.name,
                scan.config_error,
            )
            metrics.config_errors.labels(model.name).inc()
        model.config_error = scan.config_error
    metrics.config_valid.labels(model.name).set(0 if model.config_error else 1)


def _log_new(entry: ModelEntry) -> None:
    if entry.state is ModelState.FAILED:
        log.error("model %s version %s failed: %s", entry.name, entry.version, entry.reason)
    else:
        log.info("model %s version %s found; loading it", entry.name, entry.version)
