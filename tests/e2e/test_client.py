"""The Python client (clients/python) against real server processes: every model, sync and
async, the input helpers, errors, API keys, and retries on real 503s (a model held in its
loading state by a gate the test opens, and a model that failed to load)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from PIL import Image
from synergy_client import (
    AsyncSynergyClient,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    SynergyClient,
    Unauthorized,
    Unavailable,
)

from app.adapters import bound_probabilities
from app.schemas.card import ModelCard, sha256_file
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION, MODEL_NAMES, ROOT
from tests.e2e.conftest import Server, start_server
from tests.e2e.loading_gate import gated_artifact

IRIS_SETOSA = [5.1, 3.5, 1.4, 0.2]
API_KEY = "e2e-client-key"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _committed_card(name: str) -> ModelCard:
    return ModelCard.read(COMMITTED_MODELS / name / COMMITTED_VERSION)


def _assert_card_predictions(name: str, result: Any) -> None:
    """The server's answer for the card's held-out examples: their labels, and the
    probabilities recorded at training time (to float noise)."""
    card = _committed_card(name)
    assert (result.model, result.version) == (name, card.version)
    assert result.labels == [example.label for example in card.examples]
    for prediction, example in zip(result, card.examples, strict=True):
        assert list(prediction.probabilities) == card.labels
        assert example.probabilities is not None
        floor = card.out_of_domain.probability_floor if card.out_of_domain else 1e-4
        expected = bound_probabilities(np.array([example.probabilities]), floor)[0]
        np.testing.assert_allclose(list(prediction.probabilities.values()), expected, atol=1e-4)


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.05)


class CountingTransport(httpx.HTTPTransport):
    """Counts the predictions actually sent over the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.posts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.posts += request.method == "POST"
        return super().handle_request(request)


class AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.posts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.posts += request.method == "POST"
        return await super().handle_async_request(request)


# ---------------------------------------------------------------------- every model
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_sync_client_predicts_each_models_held_out_examples(server: Server, name: str) -> None:
    with SynergyClient(server.url) as client:
        examples = client.card(name).examples
        result = client.predict(name, [example.instance for example in examples])
    _assert_card_predictions(name, result)


@pytest.mark.anyio
@pytest.mark.parametrize("name", MODEL_NAMES)
async def test_async_client_predicts_each_models_held_out_examples(
    server: Server, name: str
) -> None:
    async with AsyncSynergyClient(server.url) as client:
        examples = (await client.card(name, version=int(COMMITTED_VERSION))).examples
        result = await client.predict(
            name, [example.instance for example in examples], version=int(COMMITTED_VERSION)
        )
    _assert_card_predictions(name, result)


def _scan(image: np.ndarray) -> Image.Image:
    """An MNIST digit as a scan would come: dark ink on white paper, 4x larger."""
    return Image.fromarray(255 - image).resize((112, 112), Image.Resampling.BILINEAR)


def test_image_helpers_send_arrays_as_grids_and_files_as_the_server_reads_them(
    server: Server, data_dir: Path, tmp_path: Path
) -> None:
    with np.load(data_dir / "mnist.npz") as data:
        images, labels = data["x_test"][-40:-30], data["y_test"][-40:-30]  # not the card's
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"digit-{index}.png")
        _scan(image).save(paths[-1])
    with SynergyClient(server.url) as client:
        grids = client.predict_image("mnist-cnn", list(images))
        files = client.predict_image("mnist-cnn", paths)
        pil = client.predict_image("mnist-cnn", [Image.open(path) for path in paths])
        raw = client.predict_image("mnist-cnn", [path.read_bytes() for path in paths])
        one = client.predict_image("mnist-cnn", str(paths[0]), version=int(COMMITTED_VERSION))
    truth = [str(label) for label in labels]
    assert sum(a == b for a, b in zip(grids.labels, truth, strict=True)) >= 9, grids.labels
    assert sum(a == b for a, b in zip(files.labels, truth, strict=True)) >= 9, files.labels
    # The same pixels by every route the helper takes: the server's own upload route agrees.
    uploaded = [
        httpx.post(
            f"{server.url}/v1/models/mnist-cnn:predict-image",
            files={"file": (path.name, path.read_bytes(), "image/png")},
            timeout=30,
        ).json()["predictions"][0]
        for path in paths
    ]
    for result in (files, pil, raw):
        assert result.labels == [p["label"] for p in uploaded]
        np.testing.assert_allclose(
            [list(p.probabilities.values()) for p in result],
            [list(p["probabilities"].values()) for p in uploaded],
            atol=1e-5,
        )
    assert one.labels == files.labels[:1]


def test_text_helper(server: Server) -> None:
    with SynergyClient(server.url) as client:
        assert client.predict_text(
            "imdb-sentiment", "A moving, beautifully acted film."
        ).labels == ["positive"]
        texts = [e.instance for e in _committed_card("imdb-sentiment").examples]
        _assert_card_predictions("imdb-sentiment", client.predict_text("imdb-sentiment", texts))


def test_models_cards_metrics_and_health(server: Server) -> None:
    with SynergyClient(server.url) as client:
        assert client.live() is True
        readiness = client.ready()
        assert readiness.ready and readiness.status == "ready"
        assert sorted(m.name for m in readiness.models) == sorted(MODEL_NAMES)
        models = {m.name: m for m in client.models()}
        assert sorted(models) == sorted(MODEL_NAMES)
        for name in MODEL_NAMES:
            committed = _committed_card(name)
            assert models[name].labels == tuple(committed.labels)
            assert [v.state for v in models[name].versions] == ["ready"]
            card = client.card(name, version=int(COMMITTED_VERSION))
            assert (card.name, card.labels) == (name, tuple(committed.labels))
            assert card.input["kind"] == committed.input.kind
            assert card.metrics.accuracy == committed.classification_metrics().accuracy
            assert card.serving.state == "ready"
            assert card.raw["artifacts"] == committed.artifacts
        before = client.model_metrics("iris-knn").serving.requests
        client.predict("iris-knn", [IRIS_SETOSA])
        metrics = client.model_metrics("iris-knn", version=int(COMMITTED_VERSION))
    assert metrics.serving.requests == before + 1
    assert metrics.serving.predicted_labels["setosa"].count >= 1
    assert (
        metrics.held_out.accuracy == _committed_card("iris-knn").classification_metrics().accuracy
    )


# ---------------------------------------------------------------------- errors
def test_errors_carry_the_status_and_the_servers_message(server: Server) -> None:
    with SynergyClient(server.url) as client:
        with pytest.raises(NotFound) as unknown:
            client.predict("iris", [IRIS_SETOSA])
        with pytest.raises(NotFound) as no_version:
            client.predict("iris-knn", [IRIS_SETOSA], version=9)
        with pytest.raises(NotFound):
            client.card("nope")
        with pytest.raises(InvalidInput) as short:
            client.predict("iris-knn", [IRIS_SETOSA[:3]])
        with pytest.raises(InvalidInput) as not_image:
            client.predict_image("mnist-cnn", b"these bytes are not an image")
        with pytest.raises(PayloadTooLarge) as too_many:
            client.predict("iris-knn", [IRIS_SETOSA] * 1001)
    assert unknown.value.status == 404
    assert unknown.value.message == (
        "unknown model 'iris'; available models: binary-mlp, imdb-sentiment, iris-knn, mnist-cnn"
    )
    # Exactly what the server says to a plain HTTP call.
    direct = httpx.post(
        f"{server.url}/v1/models/iris-knn/versions/9:predict", json={"instances": [IRIS_SETOSA]}
    )
    assert no_version.value.message == direct.json()["error"] and "version 9" in direct.text
    assert short.value.status == 422 and "at least 4 items" in short.value.message
    assert not_image.value.status == 422
    assert too_many.value.status == 413 and "at most 1000" in too_many.value.message


@pytest.mark.anyio
async def test_async_errors(server: Server) -> None:
    async with AsyncSynergyClient(server.url) as client:
        with pytest.raises(NotFound, match="unknown model 'iris'"):
            await client.predict("iris", [IRIS_SETOSA])
        with pytest.raises(InvalidInput) as raised:
            await client.predict_text("imdb-sentiment", "")
    assert raised.value.status == 422


# ---------------------------------------------------------------------- retries on 503
@pytest.fixture
def gated_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A server whose iris-knn stays "loading" (503 + Retry-After: 1) until `gate` exists."""
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS / "iris-knn", models / "iris-knn")
    folder = models / "iris-knn" / COMMITTED_VERSION
    gate = tmp_path / "gate"
    gated_artifact(
        folder / "model.joblib",
        gate,
        COMMITTED_MODELS / "iris-knn" / COMMITTED_VERSION / "model.joblib",
    )
    card = json.loads((folder / "card.json").read_text())
    card["artifacts"]["model.joblib"] = sha256_file(folder / "model.joblib")
    (folder / "card.json").write_text(json.dumps(card))
    server = start_server(tmp_path / "server.log", models, wait_path="/health/live")
    try:
        yield server, gate
    finally:
        gate.touch()  # the loading thread must finish for the process to exit
        server.stop()


def test_a_model_still_loading_is_retried_until_it_serves(
    gated_server: tuple[Server, Path],
) -> None:
    server, gate = gated_server
    transport = CountingTransport()
    with SynergyClient(server.url, transport=transport) as client:
        assert [m.state for m in client.ready().models] == ["loading"]
        waits: list[float] = []

        def open_the_gate_and_wait_for_readiness(delay_s: float) -> None:
            waits.append(delay_s)
            gate.touch()
            _wait_for(lambda: client.ready().ready, "iris-knn ready")

        client._sleep = open_the_gate_and_wait_for_readiness
        result = client.predict("iris-knn", [IRIS_SETOSA])
    assert result.labels == ["setosa"]
    assert waits == [1.0]  # the server's Retry-After for a loading model
    assert transport.posts == 2


@pytest.mark.anyio
async def test_async_client_retries_a_loading_model_until_it_serves(
    gated_server: tuple[Server, Path],
) -> None:
    server, gate = gated_server
    transport = AsyncCountingTransport()
    async with AsyncSynergyClient(server.url, transport=transport) as client:
        assert (await client.ready()).status == "loading"
        waits: list[float] = []

        async def open_the_gate_and_wait_for_readiness(delay_s: float) -> None:
            waits.append(delay_s)
            gate.touch()
            deadline = time.monotonic() + 120
            while not (await client.ready()).ready:
                assert time.monotonic() < deadline, "iris-knn never became ready"
                await anyio.sleep(0.05)

        client._sleep = open_the_gate_and_wait_for_readiness
        result = await client.predict("iris-knn", [IRIS_SETOSA])
    assert result.labels == ["setosa"] and waits == [1.0] and transport.posts == 2


@pytest.fixture(scope="module")
def broken_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with API keys whose only model failed to load (503 + Retry-After: 30)."""
    tmp = tmp_path_factory.mktemp("broken")
    shutil.copytree(COMMITTED_MODELS / "iris-knn", tmp / "models" / "iris-knn")
    artifact = tmp / "models" / "iris-knn" / COMMITTED_VERSION / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    server = start_server(
        tmp / "server.log", tmp / "models", wait_path="/health/live", SYNERGY_API_KEYS=API_KEY
    )
    with SynergyClient(server.url) as client:
        _wait_for(lambda: client.ready().models[0].state == "failed", "iris-knn failed")
    yield server
    server.stop()


def test_a_model_that_failed_to_load_is_not_waited_for_by_default(broken_server: Server) -> None:
    transport = CountingTransport()
    with (
        SynergyClient(broken_server.url, api_key=API_KEY, transport=transport) as client,
        pytest.raises(Unavailable) as raised,
    ):
        client.predict("iris-knn", [IRIS_SETOSA])
    assert raised.value.status == 503
    assert "failed to load" in raised.value.message and "sha256" in raised.value.message
    assert raised.value.retry_after_s == 30  # over the default 10 s: raised, not waited for
    assert transport.posts == 1


def test_retries_on_a_model_that_stays_unavailable_are_bounded(broken_server: Server) -> None:
    transport = CountingTransport()
    # A call long enough for the waits (the timeout bounds the whole call, waits included).
    client = SynergyClient(
        broken_server.url,
        api_key=API_KEY,
        max_retries=2,
        max_retry_wait_s=60,
        timeout=300,
        transport=transport,
    )
    waits: list[float] = []
    client._sleep = waits.append  # the server's answer does not depend on the time waited
    with client, pytest.raises(Unavailable, match="failed to load"):
        client.predict("iris-knn", [IRIS_SETOSA])
    assert waits == [30.0, 30.0] and transport.posts == 3  # the header's wait, 1 + 2 sends


@pytest.mark.anyio
async def test_async_retries_are_bounded(broken_server: Server) -> None:
    transport = AsyncCountingTransport()
    waits: list[float] = []

    async def record(delay_s: float) -> None:
        waits.append(delay_s)

    async with AsyncSynergyClient(
        broken_server.url,
        api_key=API_KEY,
        max_retries=1,
        max_retry_wait_s=30,
        timeout=300,
        transport=transport,
    ) as client:
        client._sleep = record
        with pytest.raises(Unavailable, match="failed to load"):
            await client.predict("iris-knn", [IRIS_SETOSA])
    assert waits == [30.0] and transport.posts == 2


def test_api_keys(broken_server: Server) -> None:
    with SynergyClient(broken_server.url) as anonymous:
        assert anonymous.live() is True  # health stays open
        assert anonymous.ready().status == "not ready"
        with pytest.raises(Unauthorized, match="missing or wrong API key") as raised:
            anonymous.models()
        assert raised.value.status == 401
    with SynergyClient(broken_server.url, api_key="wrong") as wrong, pytest.raises(Unauthorized):
        wrong.predict("iris-knn", [IRIS_SETOSA])
    with SynergyClient(broken_server.url, api_key=API_KEY) as client:
        (model,) = client.models()
    assert model.versions[0].state == "failed" and "sha256" in (model.versions[0].reason or "")


# The README's client example runs as written in tests/e2e/test_readme.py, with the others.


def test_explain_sync_and_async_against_the_server(server: Server) -> None:
    with SynergyClient(server.url) as client:
        [iris] = client.explain("iris-knn", [IRIS_SETOSA])
        [digit] = client.explain_image("mnist-cnn", ROOT / "samples" / "digit-drawing.png")
    assert iris["explained_label"] == iris["label"] == "setosa"
    assert set(iris["attributions"]) == {
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    }
    assert digit["label"] == "4" and len(digit["attribution_map"]) == 28

    async def explain_async() -> list[dict[str, object]]:
        async with AsyncSynergyClient(server.url) as client:
            return await client.explain("imdb-sentiment", ["A moving, beautifully acted film."])

    [review] = asyncio.run(explain_async())
    assert review["label"] == "positive" and review["tokens"]


def test_model_ready_names_the_failed_version(broken_server: Server) -> None:
    with SynergyClient(broken_server.url, api_key=API_KEY) as client:
        readiness = client.model_ready("iris-knn")
        assert (readiness.ready, readiness.status) == (False, "failed")
        assert readiness.failed[0].name == "iris-knn" and readiness.failed[0].reason
        assert client.ready().failed == readiness.failed
