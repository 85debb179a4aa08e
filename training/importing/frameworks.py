"""The one table of importers: one plug-in per framework (`training.importing.importer`), and
the two ways one is picked, by the fitted object (`save_model`) or by the file (`synergy
import`). Nothing else in the importer names a framework."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.importing.errors import ImportRefused
from training.importing.importer import Importer
from training.importing.keras_model import KerasImporter
from training.importing.safety import LoadedModel
from training.importing.sklearn_model import SklearnImporter

# Asked in order: the first that claims a model imports it (scikit-learn is the fallback).
IMPORTERS: tuple[Importer, ...] = (KerasImporter(), SklearnImporter())


def importer_for(model: Any) -> Importer:
    """The importer of a fitted model object."""
    return next(importer for importer in IMPORTERS if importer.claims(model))


def read_model_file(path: Path, *, trust_pickle: bool = False) -> LoadedModel:
    """Read `path` by its suffix, safely (`training.importing.safety`); raises ImportRefused."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ImportRefused(f"{path.name}: no such file")
    for importer in IMPORTERS:
        if suffix in importer.suffixes:
            return importer.read(path, trust_pickle)
    raise ImportRefused(
        f"{path.name}: not a model file this server reads; save a scikit-learn model with "
        "skops.io.dump(model, 'model.skops') (or joblib/pickle with --trust-pickle), a Keras "
        "model with model.save('model.keras')"
    )
