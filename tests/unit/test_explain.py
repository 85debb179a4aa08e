"""Explanation methods: Shapley estimators on known games, the KNN found inside wrappers, the
bounded worker, and completeness on real held-out examples on both Keras backends."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.errors import DeadlineExceeded, Unavailable
from app.explain.image import overlay_png
from app.explain.shapley import exact_shapley, permutation_shapley
from app.explain.tabular import KnnView
from app.explain.worker import ExplainWorker
from tests.conftest import COMMITTED_MODELS, MODEL_NAMES, ROOT


def _glove_game(masks: np.ndarray) -> np.ndarray:
    # Players 0 and 1 hold left gloves, player 2 a right one: a pair is worth 1.
    left = masks[:, 0] | masks[:, 1]
    return np.asarray(left & masks[:, 2], dtype=float)


def test_exact_shapley_solves_the_glove_game() -> None:
    phi, empty, full = exact_shapley(_glove_game, 3)
    np.testing.assert_allclose(phi, [1 / 6, 1 / 6, 2 / 3])
    assert (empty, full) == (0.0, 1.0)


def test_permutation_shapley_is_exact_on_additive_games_and_always_complete() -> None:
    weights = np.array([0.5, -2.0, 3.0, 0.0, 1.25])
    phi, empty, full = permutation_shapley(lambda m: m @ weights + 7.0, 5, permutations=3, seed=1)
    np.testing.assert_allclose(phi, weights)
    assert (empty, full) == (7.0, 7.0 + weights.sum())

    def interacting(masks: np.ndarray) -> np.ndarray:
        return np.asarray(np.tanh(masks @ weights) * masks[:, 0] + masks[:, 1] * masks[:, 2])

    phi, empty, full = permutation_shapley(interacting, 5, permutations=2, seed=3)
    assert phi.sum() == pytest.approx(full - empty, abs=1e-12)
    exact, _, _ = exact_shapley(interacting, 5)
    many, _, _ = permutation_shapley(interacting, 5, permutations=400, seed=3)
    np.testing.assert_allclose(many, exact, atol=0.03)


def test_a_deadline_check_stops_permutation_sampling() -> None:
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 2:
            raise TimeoutError

    with pytest.raises(TimeoutError):
        permutation_shapley(lambda m: m.sum(1), 6, permutations=50, check=check)


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return np.asarray(data.data), np.asarray(data.target)


def _wrapped_knns() -> dict[str, Any]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _iris()
    return {
        "bare": KNeighborsClassifier(5).fit(x, y),
        "pipeline": make_pipeline(StandardScaler(), KNeighborsClassifier(5)).fit(x, y),
        "calibrated": CalibratedClassifierCV(
            make_pipeline(StandardScaler(), KNeighborsClassifier(5)), cv=3
        ).fit(x, y),
    }


@pytest.mark.parametrize("kind", ["bare", "pipeline", "calibrated"])
def test_the_fitted_knn_is_found_inside_wrappers(kind: str) -> None:
    estimator = _wrapped_knns()[kind]
    view = KnnView.find(estimator)
    assert view is not None and view.knn.__class__.__name__ == "KNeighborsClassifier"
    x, _ = _iris()
    # Its training rows, back in the input's units, are rows of the data it was fitted on.
    originals = view.inverse(view.training_rows())
    assert originals is not None
    known = {tuple(np.round(row, 6)) for row in x}
    assert all(tuple(np.round(row, 6)) in known for row in originals)
    distances, _ = view.knn.kneighbors(view.transform(originals[:1]))
    assert distances[0][0] == pytest.approx(0.0, abs=1e-9)  # a training row is its own neighbour
    if kind == "calibrated":
        assert "calibrated_classifiers_[0] (of 3)" in view.source


def test_an_estimator_without_a_knn_has_no_view() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    assert KnnView.find(LogisticRegression(max_iter=500).fit(x, y)) is None


def test_the_overlay_is_a_png_of_the_map_scaled_up() -> None:
    pixels = np.zeros((28, 28))
    pixels[10:18, 12:16] = 255
    attributions = np.zeros((28, 28))
    attributions[10:14, 12:16] = 0.1
    attributions[14:18, 12:16] = -0.05
    image = Image.open(io.BytesIO(base64.b64decode(overlay_png(pixels, attributions))))
    assert image.format == "PNG" and image.size == (224, 224) and image.mode == "RGB"
    red, _green, blue = image.getpixel((13 * 8, 11 * 8))  # type: ignore[misc]
    assert red > 200 and blue < 100  # positive: red
    red, _green, blue = image.getpixel((13 * 8, 16 * 8))  # type: ignore[misc]
    assert blue > red  # negative: blue


# ---------------------------------------------------------------------- the worker
def _blocking_job(started: threading.Event, release: threading.Event) -> Any:
    def work(check: Any) -> str:
        started.set()
        release.wait(30)
        return "done"

    return work


def test_the_worker_refuses_at_once_when_its_queue_is_full() -> None:
    async def scenario() -> None:
        worker = ExplainWorker(max_queue=1, niceness=0)
        started, release = threading.Event(), threading.Event()
        deadline = time.perf_counter() + 60
        running = asyncio.ensure_future(worker.run(_blocking_job(started, release), deadline, "x"))
        while not started.is_set():
            await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(worker.run(lambda check: "second", deadline, "x"))
        await asyncio.sleep(0.01)
        with pytest.raises(Unavailable) as refused:
            await worker.run(lambda check: "third", deadline, "x")
        assert refused.value.headers["Retry-After"] and "busy" in refused.value.message
        release.set()
        assert await running == "done" and await queued == "second"
        worker.stop()

    asyncio.run(scenario())


def test_one_caller_cannot_take_the_worker_from_another() -> None:
    async def scenario() -> None:
        worker = ExplainWorker(max_queue=4, niceness=0, max_per_caller=2)
        started, release = threading.Event(), threading.Event()
        deadline = time.perf_counter() + 60
        order: list[str] = []

        def job(name: str) -> Any:
            def run(check: Any) -> str:
                order.append(name)
                return name

            return run

        running = asyncio.ensure_future(
            worker.run(_blocking_job(started, release), deadline, "x", caller="greedy")
        )
        while not started.is_set():
            await asyncio.sleep(0.01)
        greedy = asyncio.ensure_future(worker.run(job("greedy-2"), deadline, "x", "greedy"))
        await asyncio.sleep(0.01)
        # The greedy caller is at its share; its next request is refused at once ...
        for _ in range(10):
            with pytest.raises(Unavailable, match="EXPLAIN_MAX_PER_CALLER"):
                await worker.run(job("greedy-n"), deadline, "x", caller="greedy")
        # ... and another caller still gets in, every time.
        others = [
            asyncio.ensure_future(worker.run(job(f"other-{i}"), deadline, "x", f"other-{i}"))
            for i in range(2)
        ]
        await asyncio.sleep(0.01)
        release.set()
        assert await running == "done"
        assert await greedy == "greedy-2" and [await o for o in others] == ["other-0", "other-1"]
        assert "greedy-n" not in order
        worker.stop()

    asyncio.run(scenario())


def test_callers_are_served_in_turn() -> None:
    async def scenario() -> None:
        worker = ExplainWorker(max_queue=8, niceness=0, max_per_caller=4)
        started, release = threading.Event(), threading.Event()
        deadline = time.perf_counter() + 60
        order: list[str] = []

        def job(name: str) -> Any:
            def run(check: Any) -> str:
                order.append(name)
                return name

            return run

        first = asyncio.ensure_future(
            worker.run(_blocking_job(started, release), deadline, "x", caller="a")
        )
        while not started.is_set():
            await asyncio.sleep(0.01)
        jobs = [asyncio.ensure_future(worker.run(job(f"a{i}"), deadline, "x", "a")) for i in (2, 3)]
        await asyncio.sleep(0.01)
        jobs.append(asyncio.ensure_future(worker.run(job("b1"), deadline, "x", "b")))
        await asyncio.sleep(0.01)
        release.set()
        await first
        await asyncio.gather(*jobs)
        assert order == ["a2", "b1", "a3"]  # b does not wait behind all of a's queue
        worker.stop()

    asyncio.run(scenario())


def test_a_job_past_its_deadline_is_a_504_and_stops_at_its_next_check() -> None:
    stopped = threading.Event()

    def endless(check: Any) -> None:
        try:
            while True:
                check()
                time.sleep(0.005)
        finally:
            stopped.set()

    async def scenario() -> None:
        worker = ExplainWorker(max_queue=2, niceness=0)
        with pytest.raises(DeadlineExceeded, match="250 ms"):
            await worker.run(endless, time.perf_counter() + 0.2, "250 ms")
        assert await asyncio.to_thread(stopped.wait, 30)
        # The worker is free again.
        assert await worker.run(lambda check: 42, time.perf_counter() + 30, "x") == 42
        worker.stop()

    asyncio.run(scenario())


def test_a_failing_job_fails_its_request_only() -> None:
    async def scenario() -> None:
        worker = ExplainWorker(max_queue=2, niceness=0)

        def broken(check: Any) -> None:
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            await worker.run(broken, time.perf_counter() + 30, "x")
        assert await worker.run(lambda check: "fine", time.perf_counter() + 30, "x") == "fine"
        worker.stop()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- real models
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


def test_between_chunks_the_worker_gives_way_while_predictions_are_queued() -> None:
    queued = [True]
    polls: list[float] = []

    def pressure() -> bool:
        polls.append(time.perf_counter())
        return queued[0]

    def three_chunks(check: Any) -> float:
        started = time.perf_counter()
        for _ in range(3):
            check()
        return time.perf_counter() - started

    async def scenario() -> tuple[float, float]:
        worker = ExplainWorker(max_queue=2, niceness=0, pressure=pressure, max_yield_s=0.05)
        deadline = time.perf_counter() + 30
        yielding = await worker.run(three_chunks, deadline, "x")
        queued[0] = False
        free = await worker.run(three_chunks, deadline, "x")
        worker.stop()
        return yielding, free

    yielding, free = asyncio.run(scenario())
    assert yielding >= 3 * 0.05  # waited out its bound at every check, predictions queued
    assert len(polls) > 3 * 3  # and kept looking whether they were done
    assert free < yielding


def test_a_calibrated_knn_artifact_is_explained_with_its_neighbours() -> None:
    # Version 2 of iris-knn may wrap the KNN in a calibrator: the explainer still finds it.
    from app.explain.tabular import TabularExplainer
    from app.schemas.card import ModelCard

    card = ModelCard.read(max((COMMITTED_MODELS / "iris-knn").iterdir()))
    estimator = _wrapped_knns()["calibrated"]

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(estimator.predict_proba(batch), dtype=np.float64)

    names = [f.name for f in card.input.features]  # type: ignore[union-attr]
    explainer = TabularExplainer(card, predict, feature_names=names, estimator=estimator)
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


def test_word_pairs_fold_into_the_words_they_cover_and_keep_the_sum() -> None:
    from app.explain.text import fold_into_words
    from app.preprocessing.text import UNKNOWN

    words = ["the", "star", "of", "the", "star", "zorblax"]
    known = {"the", "star", "of", "the star"}
    tokens: list[dict[str, Any]] = [
        {"token": "the", "attribution": 0.2},  # twice: 0.1 each
        {"token": "star", "attribution": 0.4},  # twice: 0.2 each
        {"token": "the star", "attribution": 0.8},  # twice, two words: 0.2 to each word
        {"token": "of", "attribution": -0.1},
        {"token": UNKNOWN, "attribution": -0.3},
    ]
    folded = fold_into_words(words, known, tokens)
    assert [w["word"] for w in folded] == words
    assert [round(w["attribution"], 10) for w in folded] == [0.3, 0.4, -0.1, 0.3, 0.4, -0.3]
    assert [w["unknown"] for w in folded] == [False] * 5 + [True]
    assert sum(w["attribution"] for w in folded) == pytest.approx(
        sum(t["attribution"] for t in tokens)
    )
