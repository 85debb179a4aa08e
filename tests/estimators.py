"""Small scikit-learn estimators fitted in memory on iris, shared by the unit and integration
explanation tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return np.asarray(data.data), np.asarray(data.target)


def wrapped_knns() -> dict[str, Any]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris()
    return {
        "bare": KNeighborsClassifier(5).fit(x, y),
        "pipeline": make_pipeline(StandardScaler(), KNeighborsClassifier(5)).fit(x, y),
        "calibrated": CalibratedClassifierCV(
            make_pipeline(StandardScaler(), KNeighborsClassifier(5)), cv=3
        ).fit(x, y),
    }
