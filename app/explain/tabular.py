"""Tabular models: Shapley values per named feature, against the training mean.

The game for one row x and baseline b: a coalition S of features takes x's values on S and
b's elsewhere; its value is the model's probability of the class it predicted for x. Exact
enumeration for up to `exact_max_features` features (iris: 4 features, 16 model rows),
antithetic permutation sampling above (binary-mlp: 20 features); both are complete.

Baseline: the mean of the training data, read from the artifact itself (a fitted KNN holds
its training rows; a Keras model's Normalization layer holds their mean), so nothing extra is
stored; zeros (said so in the response) when the artifact holds neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.explain.base import Check, Explainer, Predict, completeness, prediction
from app.explain.shapley import exact_shapley, permutation_shapley
from app.schemas.card import ModelCard, TabularInput


class KnnView:
    """The fitted k-nearest-neighbours classifier inside an artifact, and the transform in
    front of it: a bare KNeighborsClassifier, a Pipeline ending in one, a calibrated wrapper
    (CalibratedClassifierCV, FrozenEstimator) or a search (best_estimator_) around those."""

    def __init__(self, knn: Any, prefix: list[Any], source: str) -> None:
        self.knn = knn
        self.prefix = prefix  # transformers applied before the KNN, in order
        self.source = source  # where the KNN sits, for the response

    @classmethod
    def find(cls, estimator: Any, path: str = "model") -> KnnView | None:
        """The KNN inside `estimator`, or None if there is no fitted one."""
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import Pipeline

        if isinstance(estimator, KNeighborsClassifier):
            return cls(estimator, [], path) if hasattr(estimator, "_fit_X") else None
        if isinstance(estimator, Pipeline):
            name, last = estimator.steps[-1]
            inner = cls.find(last, f"{path}.{name}")
            if inner is None:
                return None
            return cls(inner.knn, [estimator[:-1], *inner.prefix], inner.source)
        for attribute in ("calibrated_classifiers_", "best_estimator_", "estimator_", "estimator"):
            value = getattr(estimator, attribute, None)
            if value is None:
                continue
            if isinstance(value, list):
                if not value:
                    continue
                # Cross-validated calibration keeps one fitted model per fold: the first.
                inner = cls.find(value[0], f"{path}.{attribute}[0] (of {len(value)})")
            else:
                inner = cls.find(value, f"{path}.{attribute}")
            if inner is not None:
                return inner
        return None

    def transform(self, rows: np.ndarray) -> np.ndarray:
        for step in self.prefix:
            rows = step.transform(rows)
        return np.asarray(rows, dtype=np.float64)

    def inverse(self, rows: np.ndarray) -> np.ndarray | None:
        """Model-space rows back in the input's units (None if a step cannot invert)."""
        for step in reversed(self.prefix):
            if not hasattr(step, "inverse_transform"):
                return None
            try:
                rows = step.inverse_transform(rows)
            except (AttributeError, ValueError, TypeError):
                return None
        return np.asarray(rows, dtype=np.float64)

    def training_rows(self) -> np.ndarray:
        return np.asarray(self.knn._fit_X, dtype=np.float64)


class TabularExplainer(Explainer):
    """Shapley values over a tabular model's named features (see the module docstring)."""

    def __init__(
        self,
        card: ModelCard,
        predict: Predict,
        *,
        estimator: Any = None,
        input_mean: np.ndarray | None = None,
        exact_max_features: int = 10,
        permutations: int = 32,
    ) -> None:
        super().__init__(card)
        assert isinstance(card.input, TabularInput)
        self.predict = predict
        self.names = [feature.name for feature in card.input.features]
        self.exact = len(self.names) <= exact_max_features
        self.permutations = permutations
        self.knn = KnnView.find(estimator) if estimator is not None else None
        self.baseline, self.baseline_kind = self._baseline(input_mean)

    def _baseline(self, input_mean: np.ndarray | None) -> tuple[np.ndarray, str]:
        n = len(self.names)
        if self.knn is not None:
            mean = self.knn.training_rows().mean(axis=0, keepdims=True)
            original = self.knn.inverse(mean)
            if original is not None and original.shape == (1, n):
                return original[0], "mean of the training data (from the fitted KNN)"
        if input_mean is not None and input_mean.shape == (n,):
            return input_mean, "mean of the training data (from the model's Normalization)"
        return np.zeros(n), "zeros (the artifact holds no training statistics)"

    def method(self) -> dict[str, Any]:
        n = len(self.names)
        if self.exact:
            return {
                "name": "exact Shapley values",
                "coalitions": 2**n,
                "value_function": "probability of the explained class; features outside a "
                "coalition take the baseline's value",
            }
        return {
            "name": "Shapley values by antithetic permutation sampling",
            "permutations": 2 * self.permutations,
            "seed": 0,
            "value_function": "probability of the explained class; features outside a "
            "coalition take the baseline's value",
            "note": "every permutation's contributions telescope, so the attributions add up "
            "to f(x) - f(baseline) exactly; the sampling error is in how they are shared",
        }

    def explain(self, row: Any, check: Check) -> dict[str, Any]:
        x = np.asarray(row, dtype=np.float64).reshape(-1)
        dtype = np.asarray(row).dtype
        probabilities = self.predict(x[np.newaxis].astype(dtype))[0]
        target, result = prediction(self.card, probabilities)

        def value(masks: np.ndarray) -> np.ndarray:
            rows = np.where(masks, x, self.baseline).astype(dtype)
            return np.asarray(self.predict(rows), dtype=np.float64)[:, target]

        n = len(self.names)
        if self.exact:
            phi, f_baseline, f_x = exact_shapley(value, n)
        else:
            phi, f_baseline, f_x = permutation_shapley(
                value, n, permutations=self.permutations, check=check, chunk_permutations=8
            )
        baseline_probabilities = self.predict(self.baseline[np.newaxis].astype(dtype))[0]
        result.update(
            {
                "explained_label": self.card.labels[target],
                "method": self.method(),
                "attributions": dict(zip(self.names, phi.tolist(), strict=True)),
                "baseline": {
                    "kind": self.baseline_kind,
                    "features": dict(zip(self.names, self.baseline.tolist(), strict=True)),
                    "probabilities": dict(
                        zip(self.card.labels, baseline_probabilities, strict=True)
                    ),
                },
                "completeness": completeness(phi, f_x, f_baseline),
            }
        )
        if self.knn is not None:
            result["neighbors"] = self._neighbours(x)
        return result

    def _neighbours(self, x: np.ndarray) -> dict[str, Any]:
        assert self.knn is not None
        knn = self.knn.knn
        k = int(knn.n_neighbors)
        distances, indices = knn.kneighbors(self.knn.transform(x[np.newaxis]), n_neighbors=k)
        training = self.knn.training_rows()
        originals = self.knn.inverse(training[indices[0]])
        classes = list(knn.classes_)
        encoded = np.asarray(knn._y).reshape(len(training), -1)[:, 0]
        found = []
        for rank, (index, distance) in enumerate(zip(indices[0], distances[0], strict=True)):
            class_value = classes[int(encoded[index])]
            label = (
                self.card.labels[int(encoded[index])]
                if len(classes) == len(self.card.labels)
                else str(class_value)
            )
            neighbour: dict[str, Any] = {
                "rank": rank + 1,
                "training_index": int(index),
                "label": label,
                "distance": float(distance),
            }
            if originals is not None:
                neighbour["features"] = dict(zip(self.names, originals[rank].tolist(), strict=True))
            found.append(neighbour)
        return {
            "k": k,
            "metric": str(knn.effective_metric_),
            "weights": str(knn.weights),
            "source": self.knn.source,
            "neighbors": found,
        }
