"""Example and evaluation data, in the forms users have it: a pandas DataFrame, a NumPy
array, a list of texts; from files, a CSV with a header row (a text model's text in the column
`text`) or an `.npz` with arrays `x` and `y`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.importing.errors import ImportRefused
from training.importing.schema import feature_names, is_text_model

TEXT_COLUMN = "text"


@dataclass
class Dataset:
    """The same rows three ways: `model_input` (what the estimator takes in-process),
    `instances` (JSON, as a client sends them) and `frame` (a DataFrame to type features by;
    None for texts)."""

    model_input: Any
    instances: list[Any]
    frame: Any


def _plain(value: Any) -> Any:
    """A cell as JSON: None for a missing value, Python numbers and strings."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | np.floating | int | float):
        as_float = float(value)
        return None if math.isnan(as_float) else as_float
    return str(value)


def as_dataset(data: Any, estimator: Any) -> Dataset:
    """Rows for `estimator` from a DataFrame, an array or a list of texts."""
    import pandas as pd

    if is_text_model(estimator):
        if isinstance(data, pd.DataFrame):
            if TEXT_COLUMN not in data.columns:
                raise ImportRefused(f"a text model's data needs a column named {TEXT_COLUMN!r}")
            data = data[TEXT_COLUMN]
        texts = [str(t) for t in list(data)]
        return Dataset(texts, texts, None)
    if isinstance(data, pd.DataFrame):
        frame = data
    else:
        array = np.asarray(data)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise ImportRefused(
                f"tabular data must be 2-D (rows, features), got shape {array.shape}"
            )
        frame = pd.DataFrame(array, columns=feature_names(estimator, None))
    names = feature_names(estimator, frame)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ImportRefused("the data lacks the model's features " + ", ".join(missing[:10]))
    frame = frame[names]
    model_input = frame if hasattr(estimator, "feature_names_in_") else frame.to_numpy()
    instances = [
        {name: _plain(value) for name, value in zip(names, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]
    return Dataset(model_input, instances, frame)


def read_table(path: Path, target: str | None) -> tuple[Any, Any]:
    """(X, y) from a CSV (header row; `target` names y's column) or an .npz (`x`, `y`)."""
    import pandas as pd

    if not path.is_file():
        raise ImportRefused(f"{path.name}: no such file")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays:
                raise ImportRefused(f"{path.name} has no array named x")
            return arrays["x"], arrays.get("y")
    frame = pd.read_csv(path)
    if target is None:
        return frame, None
    targets = [t.strip() for t in target.split(",")]
    absent = [t for t in targets if t not in frame.columns]
    if absent:
        raise ImportRefused(f"{path.name} has no column {', '.join(absent)} (--target)")
    y = frame[targets[0]] if len(targets) == 1 else frame[targets]
    return frame.drop(columns=targets), y.to_numpy()
