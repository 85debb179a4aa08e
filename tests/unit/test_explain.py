"""Explanation methods: Shapley estimators on known games, the KNN found inside wrappers, the
bounded worker. Completeness on the committed models, on both Keras backends, is in
tests/integration/test_explain_models.py."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.errors import DeadlineExceeded, Unavailable
from app.explain.image import overlay_png
from app.explain.shapley import exact_shapley, permutation_shapley
from app.explain.tabular import KnnView
from app.explain.worker import ExplainWorker
from tests.estimators import iris as _iris
from tests.estimators import wrapped_knns as _wrapped_knns


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
