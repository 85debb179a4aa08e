"""Inferring what a fitted scikit-learn model takes and gives, from the model and an example.

- Task: `sklearn.base.is_classifier` / `is_regressor` (a `--task` that contradicts it is
  refused; it decides only when the estimator says neither).
- Labels: the classifier's `classes_` (as strings), or the user's `--labels` (same count).
  Regressors: the target names (`target`, or `target_0..` for several; the user may name them).
- Input: raw text when the pipeline starts with a text vectorizer; otherwise features named by
  `feature_names_in_` (or the example's columns, or `x0..` from `n_features_in_`), each typed
  by the example's dtype: numeric, categorical string (its categories recorded) or boolean.
  A model whose features are all numbers, none missing, takes plain float32 rows
  (`tabular`); any other a named table (`table`: mixed types, missing values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.schemas.card import (
    Feature,
    RawImageInput,
    RawTextInput,
    TableInput,
    TabularInput,
    TextInput,
)
from app.tasks import CLASSIFICATION, REGRESSION, TASK_KINDS, Task
from training.importing.errors import ImportRefused

TEXT_VECTORIZERS = ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")
MAX_CATEGORIES = 50


@dataclass
class Schema:
    """What was inferred (`notes` says how, for the card)."""

    task: str
    labels: list[str]
    input: TabularInput | TableInput | RawTextInput | RawImageInput | TextInput
    notes: list[str] = field(default_factory=list)
    # Files the input needs beside the model (a vocabulary): name -> UTF-8 text.
    files: dict[str, str] = field(default_factory=dict)


def check_fitted(estimator: Any) -> None:
    """Raise ImportRefused unless `estimator` is a fitted scikit-learn estimator."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(estimator, "predict") or not hasattr(estimator, "get_params"):
        raise ImportRefused(
            f"a {type(estimator).__name__} is not a scikit-learn estimator (no predict/get_params)"
        )
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ImportRefused(
            f"the {type(estimator).__name__} is not fitted: call fit() before importing it"
        ) from None


def infer_task(estimator: Any, requested: str) -> Task:
    """The task plug-in: classification (binary/multiclass decided by the labels) or
    regression, from the estimator's type, else `requested` (a `TASK_KINDS` key or "auto")."""
    from sklearn.base import is_classifier, is_regressor

    found = (
        CLASSIFICATION
        if is_classifier(estimator)
        else REGRESSION
        if is_regressor(estimator)
        else None
    )
    if requested != "auto" and found is not None and requested != found.kind:
        raise ImportRefused(
            f"--task {requested} contradicts the estimator, a {found.kind} model "
            f"({type(estimator).__name__})"
        )
    task = found or TASK_KINDS.get(requested)
    if task is None:
        raise ImportRefused(
            f"cannot tell whether the {type(estimator).__name__} is a classifier or a "
            "regressor; pass --task classification or --task regression"
        )
    if task.probabilities and not hasattr(estimator, "predict_proba"):
        raise ImportRefused(
            f"the {type(estimator).__name__} classifier has no predict_proba; the server "
            "serves class probabilities (use e.g. CalibratedClassifierCV around it)"
        )
    return task


def infer_labels(estimator: Any, task: Task, given: list[str] | None, n_targets: int) -> list[str]:
    """The class labels (a task of probabilities: classifiers) or target names (regressors)."""
    if task.probabilities:
        classes = [str(c) for c in getattr(estimator, "classes_", [])]
        if given:
            if classes and len(given) != len(classes):
                raise ImportRefused(
                    f"--labels names {len(given)} labels but the model has {len(classes)} "
                    f"classes ({', '.join(classes)})"
                )
            return list(given)
        if len(classes) < 2:
            raise ImportRefused("the classifier has no classes_; pass --labels A,B,...")
        return classes
    if given:
        if len(given) != n_targets:
            raise ImportRefused(
                f"--labels names {len(given)} targets but the model predicts {n_targets}"
            )
        return list(given)
    return ["target"] if n_targets == 1 else [f"target_{i}" for i in range(n_targets)]


def is_text_model(estimator: Any) -> bool:
    """Whether the model takes raw strings (its first step is a text vectorizer)."""
    first = estimator.steps[0][1] if hasattr(estimator, "steps") else estimator
    return type(first).__name__ in TEXT_VECTORIZERS


def feature_names(estimator: Any, example: Any) -> list[str]:
    """The model's feature names: `feature_names_in_`, else the example's columns, else x0.."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    columns = getattr(example, "columns", None)
    count = getattr(estimator, "n_features_in_", None)
    if columns is not None and (count is None or len(columns) == count):
        return [str(c) for c in columns]
    if count is None:
        raise ImportRefused(
            "cannot tell how many features the model takes (no n_features_in_); pass an example"
        )
    return [f"x{i}" for i in range(int(count))]


def typed_features(names: list[str], frame: Any) -> list[Feature]:
    """Features typed by the example table's column dtypes (all numbers without one)."""
    if frame is None:
        return [Feature(name=name) for name in names]
    missing_columns = [n for n in names if n not in frame.columns]
    if missing_columns:
        raise ImportRefused(
            "the example lacks the model's features " + ", ".join(missing_columns[:10])
        )
    features = []
    for name in names:
        column = frame[name]
        kind = column.dtype.kind
        has_missing = bool(column.isna().any())
        if kind in "iuf":
            features.append(Feature(name=name, missing=has_missing))
        elif kind == "b":
            features.append(Feature(name=name, dtype="boolean", missing=has_missing))
        else:
            values = column.dropna()
            if len(values) and all(isinstance(v, bool | np.bool_) for v in values):
                features.append(Feature(name=name, dtype="boolean", missing=has_missing))
                continue
            categories = sorted({str(v) for v in values})
            features.append(
                Feature(
                    name=name,
                    dtype="string",
                    categories=categories[:MAX_CATEGORIES],
                    missing=has_missing,
                )
            )
    return features


def input_spec(features: list[Feature]) -> TabularInput | TableInput:
    """Plain float32 rows when every feature is a number that is never missing; else a table."""
    if all(f.dtype == "number" and not f.missing for f in features):
        return TabularInput(features=features)
    return TableInput(features=features)
