"""Importing a scikit-learn estimator (or Pipeline): its schema from the fitted object and the
example's dtypes, a `.skops` copy rebuilt by the server with its audited trust list.

Files: `.skops` (rebuilt with the server's trust list, `app.runtimes`), or a pickle/joblib file
the user vouches for (scanned first: `training.importing.safety`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from app.kinds import KINDS
from app.runtimes import UntrustedArtifact, runtime_for
from app.schemas.card import ModelCard, RawTextInput
from app.tasks import task_of
from training.importing.data import Dataset, as_dataset
from training.importing.errors import ImportRefused
from training.importing.importer import Importer, Prepared
from training.importing.safety import PICKLE_SUFFIXES, LoadedModel, read_pickle
from training.importing.schema import (
    Schema,
    check_fitted,
    feature_names,
    infer_labels,
    infer_task,
    input_spec,
    is_text_model,
    typed_features,
)

MODEL_FILE = "model.skops"


class SklearnImporter(Importer):
    """scikit-learn estimators: anything that is not another framework's model."""

    framework = "sklearn"
    serialization = "skops"
    suffixes = (".skops", *PICKLE_SUFFIXES)
    libraries = ("scikit-learn", "numpy", "scipy", "skops", "pandas")

    def claims(self, model: Any) -> bool:
        # The fallback: check_fitted refuses what is not a fitted estimator.
        return True

    def read(self, path: Path, trust: bool) -> LoadedModel:
        if path.suffix.lower() != ".skops":
            return read_pickle(path, trust)
        try:
            model = runtime_for(self.framework).read_artifact(path.read_bytes())
        except UntrustedArtifact as exc:
            raise ImportRefused(f"{path.name}: {exc}; nothing in it was run") from None
        except Exception as exc:  # noqa: BLE001 - any failure to parse: not a skops model
            raise ImportRefused(f"{path.name} is not a skops file ({type(exc).__name__})") from None
        return LoadedModel(model, "skops")

    def prepare(
        self,
        model: Any,
        example: Any,
        evaluation: tuple[Any, Any] | None,
        task: str,
        labels: list[str] | None,
        vocabulary: list[str] | None = None,
    ) -> Prepared:
        if vocabulary is not None:
            raise ImportRefused(
                "--vocabulary is for Keras models taking token ids; a scikit-learn text "
                "pipeline brings its own (its vectorizer's)"
            )
        check_fitted(model)
        sample = as_dataset(example, model) if example is not None else None
        held_out = as_dataset(evaluation[0], model) if evaluation is not None else None
        # Feature types, categories and missing values are read from all the data given.
        typing = sample
        if sample is not None and held_out is not None and sample.frame is not None:
            import pandas as pd

            typing = Dataset(sample.model_input, [], pd.concat([sample.frame, held_out.frame]))
        schema = _infer_schema(model, typing, task, labels)
        if sample is None:
            if not KINDS[schema.input.kind].zeros_example:
                raise ImportRefused("a text model needs an example (a few texts) for its card")
            width = len(getattr(schema.input, "features", []))
            sample = as_dataset(np.zeros((1, width)), model)
            schema.notes.append("no example given: the replay example is a row of zeros")
        return Prepared(schema, sample, held_out)

    def save(self, model: Any, folder: Path) -> str:
        import skops.io as sio

        sio.dump(model, folder / MODEL_FILE)
        return MODEL_FILE

    def direct(self, model: Any, card: ModelCard, model_input: Any) -> np.ndarray:
        if task_of(card).probabilities:
            return np.asarray(model.predict_proba(model_input), dtype=np.float64)
        values = np.asarray(model.predict(model_input), dtype=np.float64)
        return values.reshape(len(values), -1)

    def hyperparameters(self, model: Any) -> dict[str, Any]:
        """The estimator's top-level hyperparameters that are plain JSON values."""
        plain = (str, int, float, bool, type(None))
        params = model.get_params(deep=False)
        return {
            k: v
            for k, v in sorted(params.items())
            if isinstance(v, plain) and not (isinstance(v, float) and not math.isfinite(v))
        }


def _infer_schema(
    estimator: Any, example: Dataset | None, task: str, labels: list[str] | None
) -> Schema:
    found = infer_task(estimator, task)
    notes = [f"task {found.kind} from the estimator type"]
    if is_text_model(estimator):
        spec: Any = RawTextInput()
        notes.append("raw text input: the pipeline starts with a text vectorizer")
    else:
        names = feature_names(estimator, example.frame if example else None)
        features = typed_features(names, example.frame if example else None)
        spec = input_spec(features)
        notes.append(
            f"{len(features)} features from "
            + ("feature_names_in_" if hasattr(estimator, "feature_names_in_") else "n_features_in_")
            + (", typed by the example's dtypes" if example else " (all numeric: no example)")
        )
    n_targets = 1
    # A regressor's targets are counted from its predictions (a classifier's from classes_).
    if not found.probabilities and example is not None:
        n_targets = np.asarray(estimator.predict(example.model_input[:1])).reshape(1, -1).shape[1]
    labels = infer_labels(estimator, found, labels, n_targets)
    notes.append(
        ("labels from classes_" if found.probabilities and labels else "target names")
        if labels
        else ""
    )
    return Schema(found.card_task(len(labels)), labels, spec, notes)
