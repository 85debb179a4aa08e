"""Importing a Keras model: schema from its input shape and output layer, a `.keras` copy
checked like any file the user brings, the same end-to-end check as scikit-learn models.

Taken: one input of shape (None, F) (tabular: features named by the example's columns, else
x0..), a classifier (softmax or sigmoid output; labels from --labels, else "0".."C-1") or a
regressor (any other output activation; one target per unit). Image and text inputs are
refused with a clear message (not imported yet).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from app.schemas.card import Feature, TabularInput
from app.tasks import CLASSIFICATION, REGRESSION, task_of
from training.importing.errors import ImportRefused
from training.importing.safety import check_keras_config
from training.importing.schema import Schema

MODEL_FILE = "model.keras"
CLASSIFIER_ACTIVATIONS = ("softmax", "sigmoid")


def is_keras_model(model: Any) -> bool:
    """Whether `model` is a Keras model object."""
    return any(
        c.__module__.startswith("keras") and c.__name__ == "Model" for c in type(model).__mro__
    )


def keras_schema(
    model: Any, task: str, labels: list[str] | None, columns: list[str] | None
) -> Schema:
    """Task, labels and input of a Keras model (see the module docstring)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ImportRefused("only Keras models with one input and one output are imported")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 2 or shape[1] is None:
        raise ImportRefused(
            f"the Keras model takes inputs of shape {shape}; only tabular inputs (None, F) are "
            "imported so far (image and text Keras models: not yet)"
        )
    width = int(shape[1])
    names = (
        columns
        if columns is not None and len(columns) == width
        else [f"x{i}" for i in range(width)]
    )
    units = int(model.outputs[0].shape[-1])
    activation = str(model.layers[-1].get_config().get("activation", "linear"))
    found = CLASSIFICATION if activation in CLASSIFIER_ACTIVATIONS else REGRESSION
    if task != "auto" and task != found.kind:
        raise ImportRefused(
            f"--task {task} contradicts the Keras model's {activation} output ({found.kind})"
        )
    notes = [
        f"task {found.kind} from the output activation {activation!r}",
        f"{width} features from the input shape",
    ]
    if found.probabilities:
        count = 2 if units == 1 else units  # a sigmoid's one unit: two classes
        names_given = labels or [str(i) for i in range(count)]
        if len(names_given) != count:
            raise ImportRefused(
                f"--labels names {len(names_given)} labels but the model has {count} classes"
            )
        return Schema(
            found.card_task(count),
            names_given,
            TabularInput(features=[Feature(name=n) for n in names]),
            notes,
        )
    targets = labels or (["target"] if units == 1 else [f"target_{i}" for i in range(units)])
    if len(targets) != units:
        raise ImportRefused(f"--labels names {len(targets)} targets but the model predicts {units}")
    return Schema(
        found.card_task(units),
        targets,
        TabularInput(features=[Feature(name=n) for n in names]),
        notes,
    )


def save_keras_copy(model: Any, folder: Path) -> str:
    """Save an inference copy as `.keras` into `folder` and check its config like a file the
    user brought; returns the file name."""
    import keras

    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    path = folder / MODEL_FILE
    inference.save(path)
    with zipfile.ZipFile(path) as archive:
        check_keras_config(json.loads(archive.read("config.json")))
    return MODEL_FILE


def keras_direct(model: Any, card: Any, x: Any) -> np.ndarray:
    """The model's own outputs in-process, as the server reports them."""
    values = np.asarray(model.predict(np.asarray(x, dtype=np.float32), verbose=0), dtype=np.float64)
    return task_of(card).model_outputs(values)
