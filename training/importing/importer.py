"""What a framework's importer plug-in answers (registered in `training.importing.frameworks`):
which model objects and files are its own, how a file is read safely, how the model's schema
and sample rows are found, how its artifact is saved and recorded in the card, and what the
model itself predicts in-process (the import's end-to-end check compares it with the server).
"""

from __future__ import annotations

import contextlib
import platform
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from app.schemas.card import ModelCard
from training.importing.data import Dataset
from training.importing.safety import LoadedModel
from training.importing.schema import Schema


@dataclass
class Prepared:
    """A model's inferred schema, its sample rows (the card's replay examples; zeros when no
    example was given) and its held-out rows (when evaluation data was given)."""

    schema: Schema
    sample: Dataset
    held_out: Dataset | None


class Importer(ABC):
    """One framework's importer (see the module docstring)."""

    # The card's `framework` (the runtime that serves the artifact, `app.runtimes`).
    framework: ClassVar[str]
    # The card's `imported.serialization`: the format of the artifact written.
    serialization: ClassVar[str]
    # The file suffixes `synergy import` reads with this importer (lower case, with the dot).
    suffixes: ClassVar[tuple[str, ...]]
    # The distributions whose versions the card records (`library_versions`).
    libraries: ClassVar[tuple[str, ...]]

    @abstractmethod
    def claims(self, model: Any) -> bool:
        """Whether `model` (a fitted object in memory) is one of this framework's."""

    @abstractmethod
    def read(self, path: Path, trust: bool) -> LoadedModel:
        """Read `path` (one of `suffixes`) without running code from it unless `trust`;
        raises ImportRefused."""

    @abstractmethod
    def prepare(
        self,
        model: Any,
        example: Any,
        evaluation: tuple[Any, Any] | None,
        task: str,
        labels: list[str] | None,
        vocabulary: list[str] | None = None,
    ) -> Prepared:
        """The schema and rows of `model` from the user's `example` and `evaluation` inputs
        (`task`: a task kind or "auto"; `vocabulary`: a saved vocabulary, `[UNK]` first, for
        a model taking token ids); raises ImportRefused."""

    @abstractmethod
    def save(self, model: Any, folder: Path) -> str:
        """Write the artifact the server loads into `folder`; returns its file name."""

    @abstractmethod
    def direct(self, model: Any, card: ModelCard, model_input: Any) -> np.ndarray:
        """The model's own `(N, C)` outputs in-process for `model_input`, as the server
        reports them."""

    def hyperparameters(self, model: Any) -> dict[str, Any]:
        """The card's `hyperparameters`: none by default."""
        return {}

    def backend(self) -> str | None:
        """The card's `imported.backend` (a framework's compute backend), or None."""
        return None

    def versions(self) -> dict[str, str]:
        """The card's `library_versions`: Python and `libraries` (those installed)."""
        return {"python": platform.python_version(), **installed(self.libraries)}


def installed(libraries: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each of `libraries` (those not installed left out)."""
    versions: dict[str, str] = {}
    for library in libraries:
        with contextlib.suppress(Exception):
            versions[library] = installed_version(library)
    return versions
