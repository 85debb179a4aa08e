"""A scikit-learn model served through ONNX Runtime (SYNERGY_ONNX_ACCELERATION, on by
default) answers as scikit-learn does, says which engine computes it, and the setting turns
it off."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.runtimes import onnx_engine
from tests.conftest import card_examples, predict, running_app


def _flowers(models_dir: Path) -> list[Any]:
    """The card's examples, then flowers within, around and far beyond the iris ranges."""
    rng = np.random.default_rng(11)
    drawn = np.concatenate(
        [rng.uniform(0.1, 8.0, (40, 4)), rng.uniform(-50.0, 80.0, (20, 4))]
    ).round(3)
    examples = [instance for instance, _ in card_examples(models_dir, "iris-knn")]
    generated: list[Any] = drawn.tolist()
    return examples + generated


def test_iris_knn_through_onnx_runtime_answers_as_scikit_learn(
    tmp_path: Path, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Which engine is faster depends on the host: the speed rule has its unit test.
    monkeypatch.setattr(onnx_engine, "TIMED_BATCH_SIZES", ())
    graph_calls: list[int] = []
    run = onnx_engine.OnnxEngine.run

    def counted(engine: onnx_engine.OnnxEngine, batch: Any) -> np.ndarray:
        graph_calls.append(len(batch))
        return run(engine, batch)

    monkeypatch.setattr(onnx_engine.OnnxEngine, "run", counted)
    only_iris = tmp_path / "models"
    shutil.copytree(tiny_models_dir / "iris-knn", only_iris / "iris-knn")
    flowers = _flowers(only_iris)
    answers: dict[bool, list[dict[str, Any]]] = {}
    for accelerated in (True, False):
        with running_app(only_iris, onnx_acceleration=accelerated) as client:
            graph_calls.clear()  # the check's and the warm-up's
            serving = client.get("/v1/models/iris-knn").json()["serving"]
            if accelerated:
                assert serving["engine"].startswith("ONNX Runtime ")
                assert "verified against scikit-learn on 512 rows" in serving["engine"]
            else:
                assert serving["engine"] is None
            response = predict(client, "iris-knn", flowers)
            assert response.status_code == 200, response.text
            answers[accelerated] = response.json()["predictions"]
            # V2 goes through the same model: the same probabilities.
            v2 = client.post(
                "/v2/models/iris-knn/infer",
                json={
                    "inputs": [
                        {
                            "name": "features",
                            "datatype": "FP32",
                            "shape": [len(flowers[-60:]), 4],
                            "data": flowers[-60:],
                        }
                    ]
                },
            )
            assert v2.status_code == 200, v2.text
            # Through the graph: at least the flowers within the ranges (and the examples);
            # those far beyond the checked box go to scikit-learn. Without it: none.
            assert (sum(graph_calls) >= 40) == accelerated, graph_calls
            assert bool(graph_calls) == accelerated, graph_calls
    onnx, sklearn = answers[True], answers[False]
    assert [a["label"] for a in onnx] == [a["label"] for a in sklearn]
    assert [a["warnings"] for a in onnx] == [a["warnings"] for a in sklearn]
    for fast, reference in zip(onnx, sklearn, strict=True):
        assert fast["probabilities"].keys() == reference["probabilities"].keys()
        for label, probability in reference["probabilities"].items():
            assert abs(fast["probabilities"][label] - probability) <= 1e-6
