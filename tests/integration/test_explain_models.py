"""Explanations of the committed models: complete on real held-out examples on both Keras
backends (each in its own process), and a calibrated KNN artifact explained with its
neighbours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import COMMITTED_MODELS, MODEL_NAMES, ROOT
from tests.estimators import iris as _iris
from tests.estimators import wrapped_knns as _wrapped_knns


@pytest.fixture(scope="module")
def reports(data_dir: Path) -> dict[str, dict[str, Any]]:
    """tests/explain_check.py on the committed models, once per Keras backend."""
    results = {}
    for backend in ("jax", "tensorflow"):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(
            [sys.executable, "-m", "tests.explain_check", str(COMMITTED_MODELS), str(data_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_every_model_is_explained_completely_on_real_examples(
    reports: dict[str, dict[str, Any]], backend: str
) -> None:
    report = reports[backend]
    assert report["backend"] == backend
    assert sorted(report["models"]) == sorted(MODEL_NAMES)
    for name, model in report["models"].items():
        assert model["records"], name
        for record in model["records"]:
            completeness = record["completeness"]
            difference = completeness["prediction_minus_baseline"]
            bound = max(0.02 * abs(difference), 0.01)
            assert completeness["tolerance"] == pytest.approx(bound)
            assert abs(completeness["sum_of_attributions"] - difference) <= bound, (name, record)
            assert record["label"] == record["predicted_label"], name


def test_both_backends_draw_the_same_pixel_maps(reports: dict[str, dict[str, Any]]) -> None:
    jax_records = reports["jax"]["models"]["mnist-cnn"]["records"]
    tf_records = reports["tensorflow"]["models"]["mnist-cnn"]["records"]
    for jax_record, tf_record in zip(jax_records, tf_records, strict=True):
        a = np.asarray(jax_record["attribution_map"]).ravel()
        b = np.asarray(tf_record["attribution_map"]).ravel()
        assert a.shape == (784,)
        assert np.corrcoef(a, b)[0, 1] > 0.99


def test_a_calibrated_knn_artifact_is_explained_with_its_neighbours() -> None:
    # Version 2 of iris-knn may wrap the KNN in a calibrator: the explainer still finds it.
    from app.explain.tabular import TabularExplainer
    from app.schemas.card import ModelCard

    card = ModelCard.read(max((COMMITTED_MODELS / "iris-knn").iterdir()))
    estimator = _wrapped_knns()["calibrated"]

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(estimator.predict_proba(batch), dtype=np.float64)

    explainer = TabularExplainer(card, predict, estimator=estimator)
    x, _ = _iris()
    result = explainer.explain(x[120].astype(np.float32), lambda: None)
    completeness = result["completeness"]
    assert completeness["error"] <= completeness["tolerance"]
    assert result["method"]["name"] == "exact Shapley values"
    assert "training data" in result["baseline"]["kind"]
    neighbours = result["neighbors"]
    assert neighbours["k"] == 5 and len(neighbours["neighbors"]) == 5
    assert all(n["label"] in card.labels for n in neighbours["neighbors"])
    assert "of 3" in neighbours["source"]
