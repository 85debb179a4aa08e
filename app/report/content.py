"""What the report page shows, computed from a model card and its artifact folder.

Everything here is read-only and bounded: optional artifacts (the training history, the
misclassified held-out examples) are read only when the card lists them, only when they are
regular files inside the version folder, at most `MAX_ARTIFACT_BYTES`, and only when their
sha256 matches the card (the server verified them at load; a file swapped since is refused,
not shown). A card field or artifact that a version does not have is "not recorded", never
guessed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.html import digit_png as digit_png  # the page's images; re-exported for the tests
from app.repository import RepositoryFileError, read_repository_file
from app.schemas.card import ModelCard

MAX_ARTIFACT_BYTES = 8 << 20
HISTORY_FILES = ("history.json",)  # names a trainer may use without a card field
ERRORS_FILES = ("errors.json",)


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class, from the confusion matrix (0 when undefined)."""

    label: str
    support: int
    precision: float
    recall: float
    f1: float


def per_class(matrix: list[list[int]], labels: list[str]) -> list[ClassMetrics]:
    """Per-class metrics from a confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(matrix, dtype=np.int64)
    out = []
    for i, label in enumerate(labels):
        true_positive = int(cm[i, i])
        predicted = int(cm[:, i].sum())
        actual = int(cm[i, :].sum())
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append(ClassMetrics(label, actual, precision, recall, f1))
    return out


@dataclass(frozen=True)
class Artifact:
    """An optional artifact: its parsed JSON, or why there is none to show."""

    data: Any = None
    missing: str | None = None


def card_field(card: Any, name: str) -> Any:
    """An optional card field as JSON data, None where this card (or this server's card
    schema) has no such field: fields other branches add light up when they land."""
    value = getattr(card, name, None)
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def optional_artifact(
    card: ModelCard, folder: Path, field: str, fallbacks: tuple[str, ...]
) -> Artifact:
    """The JSON artifact named by the card's `field` (or a conventional name the card lists
    in its artifacts)."""
    name = card_field(card, field)
    if name is None:
        name = next((n for n in fallbacks if n in card.artifacts), None)
    if name is None:
        return Artifact(missing="not recorded for this version")
    expected = card.artifacts.get(name)
    if expected is None:
        return Artifact(missing=f"{name} is not listed in the card's artifacts")
    try:
        raw = read_repository_file(folder / name, folder.resolve())
    except FileNotFoundError:
        return Artifact(missing=f"{name} is missing from the model folder")
    except RepositoryFileError as exc:
        return Artifact(missing=str(exc))
    if len(raw) > MAX_ARTIFACT_BYTES:
        return Artifact(missing=f"{name} is over {MAX_ARTIFACT_BYTES >> 20} MiB; not shown")
    if hashlib.sha256(raw).hexdigest() != expected:
        return Artifact(missing=f"{name} does not match the card's sha256; not shown")
    try:
        return Artifact(data=json.loads(raw))
    except ValueError:
        return Artifact(missing=f"{name} is not valid JSON")


def training_history(card: ModelCard, folder: Path) -> Artifact:
    """Per-epoch metrics: `{"loss": [...], "val_loss": [...], ...}` (numbers only kept)."""
    found = optional_artifact(card, folder, "history_file", HISTORY_FILES)
    if found.missing:
        return found
    data = found.data
    if isinstance(data, dict) and isinstance(data.get("history"), dict):
        data = data["history"]  # tolerate {"history": {...}, "epochs": ...}
    if not isinstance(data, dict):
        return Artifact(missing="the history artifact is not a metric -> values mapping")
    history = {
        str(key): [float(v) for v in values]
        for key, values in data.items()
        if isinstance(values, list)
        and values
        and all(isinstance(v, int | float) and np.isfinite(v) for v in values)
    }
    if not history:
        return Artifact(missing="the history artifact holds no per-epoch numbers")
    return Artifact(data=history)


def misclassified(card: ModelCard, folder: Path) -> Artifact:
    """Held-out examples the model got wrong, recorded at training time:
    `{"evaluated_on", "wrong", "examples": [{"instance", "label", "predicted",
    "confidence"}]}` (see `training.common.misclassified_examples`)."""
    found = optional_artifact(card, folder, "errors_file", ERRORS_FILES)
    if found.missing:
        return found
    data = found.data
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list):
        return Artifact(missing="the errors artifact has no examples list")
    kept = [
        e
        for e in examples
        if isinstance(e, dict) and "instance" in e and "label" in e and "predicted" in e
    ]
    return Artifact(data={**data, "examples": kept})


def file_sizes(card: ModelCard, folder: Path) -> dict[str, int | None]:
    """Bytes of each artifact file (None when it cannot be read)."""
    sizes: dict[str, int | None] = {}
    for name in sorted(card.artifacts):
        try:
            sizes[name] = (folder / name).stat().st_size
        except OSError:
            sizes[name] = None
    return sizes


def human_bytes(size: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if size is None:
        return "unreadable"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
