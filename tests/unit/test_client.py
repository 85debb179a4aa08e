"""The Python client (clients/python) against httpx.MockTransport: requests, errors, retries,
input helpers. The real-server tests are in tests/e2e/test_client.py, the ones in a fresh
interpreter in tests/integration/test_client_imports.py."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import synergy_client
from PIL import Image
from synergy_client import (
    AsyncSynergyClient,
    BadRequest,
    ClientError,
    DeadlineExceeded,
    InvalidInput,
    ModelFailed,
    NetworkError,
    NotFound,
    PayloadTooLarge,
    ServerError,
    SynergyClient,
    SynergyError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from synergy_client.inputs import image_instance, image_instances

from tests.conftest import ROOT

CLIENT_DIR = ROOT / "clients" / "python"
IRIS = {
    "model": "iris-knn",
    "version": 1,
    "predictions": [
        {"label": "setosa", "probabilities": {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0}},
        {
            "label": "virginica",
            "probabilities": {"setosa": 0.0, "versicolor": 0.0909, "virginica": 0.9091},
        },
    ],
}
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a script and keeps every request."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def ok(body: Any = None) -> httpx.Response:
    return httpx.Response(200, json=IRIS if body is None else body)


def unavailable(
    retry_after: str | None = "1", message: str = "model x is overloaded"
) -> httpx.Response:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return httpx.Response(503, json={"error": message}, headers=headers)


def sync_client(handler: Handler, **kwargs: Any) -> tuple[SynergyClient, list[float]]:
    """A client on a mock transport whose sleeps are recorded, not slept."""
    client = SynergyClient(
        "http://serve.test/prefix", transport=httpx.MockTransport(handler), **kwargs
    )
    sleeps: list[float] = []
    client._sleep = sleeps.append
    return client, sleeps


def async_client(handler: Handler, **kwargs: Any) -> tuple[AsyncSynergyClient, list[float]]:
    client = AsyncSynergyClient(
        "http://serve.test/prefix", transport=httpx.MockTransport(handler), **kwargs
    )
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    client._sleep = record
    return client, sleeps


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------- requests and answers
def test_predict_sends_the_instances_with_the_key_and_parses_typed_predictions() -> None:
    recorder = Recorder(ok())
    client, _ = sync_client(recorder, api_key="s3cret", timeout=4.5)
    with client:
        result = client.predict("iris-knn", [[5.1, 3.5, 1.4, 0.2], {"sepal_length": 6.7}])
    request = recorder.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "http://serve.test/prefix/v1/models/iris-knn:predict"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/json"
    # What is left of the call's 4.5 s, for every phase.
    phases = request.extensions["timeout"]
    assert set(phases) == {"connect", "read", "write", "pool"}
    assert all(3.0 < value <= 4.5 for value in phases.values())
    assert recorder.bodies() == [{"instances": [[5.1, 3.5, 1.4, 0.2], {"sepal_length": 6.7}]}]
    assert (result.model, result.version, len(result)) == ("iris-knn", 1, 2)
    assert result.labels == ["setosa", "virginica"]
    assert result[1].label == "virginica"
    assert result[1].probabilities == {"setosa": 0.0, "versicolor": 0.0909, "virginica": 0.9091}
    assert [p.label for p in result] == ["setosa", "virginica"]


def test_version_and_numpy_instances() -> None:
    recorder = Recorder(ok())
    client, _ = sync_client(recorder)
    client.predict("iris-knn", np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32), version=3)
    client.predict("iris-knn", [np.array([1, 2, 3, 4]), [5, 6, 7, 8]])
    assert recorder.requests[0].url.path == "/prefix/v1/models/iris-knn/versions/3:predict"
    assert recorder.bodies() == [
        {"instances": [[5.099999904632568, 3.5, 1.399999976158142, 0.20000000298023224]]},
        {"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]},
    ]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.predict("iris-knn", [[float("nan"), 1, 2, 3]]), ValueError),
        (lambda c: c.predict("iris-knn", "5.1, 3.5"), TypeError),
        (lambda c: c.predict("iris-knn", [[1, 2, 3, 4]], version="1"), TypeError),
        (lambda c: c.predict_text("imdb-sentiment", ["fine", 3]), TypeError),
        (lambda c: c.predict_image("mnist-cnn", 42), TypeError),
    ],
)
def test_caller_mistakes_fail_before_sending(
    call: Callable[[SynergyClient], Any], error: type[Exception]
) -> None:
    recorder = Recorder(ok())
    client, _ = sync_client(recorder)
    with pytest.raises(error):
        call(client)
    assert recorder.requests == []


def test_text_helper_takes_one_string_or_several() -> None:
    recorder = Recorder(ok())
    client, _ = sync_client(recorder)
    client.predict_text("imdb-sentiment", "A moving film.")
    client.predict_text("imdb-sentiment", ("Dull.", "Great!"))
    assert recorder.bodies() == [
        {"instances": ["A moving film."]},
        {"instances": ["Dull.", "Great!"]},
    ]


def test_models_card_metrics_and_health_parse_the_servers_shapes() -> None:
    status = {"name": "iris-knn", "version": 1, "state": "ready", "device": "cpu"}
    metrics = {
        "evaluated_on": "test",
        "test_size": 3,
        "accuracy": 1.0,
        "precision_macro": 1.0,
        "recall_macro": 1.0,
        "f1_macro": 1.0,
        "roc_auc": None,
        "confusion_matrix": [[1, 0], [0, 2]],
    }
    answers = {
        "/v1/models": {
            "models": [
                {
                    "name": "iris-knn",
                    "latest_version": 1,
                    "versions": [status],
                    "framework": "sklearn",
                    "task": "multiclass-classification",
                    "input_kind": "tabular",
                    "labels": ["a", "b"],
                    "description": "d",
                    "added_later": True,  # a newer server's extra field is ignored
                }
            ]
        },
        "/v1/models/iris-knn/versions/1": {
            "card": {
                "name": "iris-knn",
                "version": 1,
                "description": "d",
                "framework": "sklearn",
                "task": "multiclass-classification",
                "input": {"kind": "tabular", "features": [{"name": "x"}]},
                "labels": ["a", "b"],
                "metrics": metrics,
                "examples": [{"instance": [1.0], "label": "a", "probabilities": [1, 0]}],
                "seed": 42,
            },
            "serving": {
                "state": "ready",
                "device": "cpu",
                "load_seconds": 0.1,
                "max_batch_size": 64,
                "max_batch_wait_ms": 2.0,
                "max_queue_rows": 256,
            },
        },
        "/v1/models/iris-knn/metrics": {
            "model": "iris-knn",
            "version": 1,
            "held_out": metrics,
            "serving": {
                "requests": 4,
                "errors": 1,
                "errors_by_status": {"422": 1},
                "latency_ms": {"p50": 1.5, "p90": 2.0, "p99": 2.5, "window": 3},
                "predicted_labels": {"a": {"count": 3, "share": 1.0}},
            },
        },
        "/health/live": {"status": "alive"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers[request.url.path.removeprefix("/prefix")])

    client, _ = sync_client(handler)
    (summary,) = client.models()
    assert (summary.name, summary.labels, summary.versions[0].state) == (
        "iris-knn",
        ("a", "b"),
        "ready",
    )
    card = client.card("iris-knn", version=1)
    assert card.labels == ("a", "b") and card.input["kind"] == "tabular"
    assert card.examples[0].instance == [1.0] and card.raw["seed"] == 42
    assert card.metrics.confusion_matrix == ((1, 0), (0, 2)) and card.serving.max_queue_rows == 256
    served = client.model_metrics("iris-knn")
    assert served.serving.errors_by_status == {"422": 1}
    assert served.serving.latency_ms.p99 == 2.5
    assert served.serving.predicted_labels["a"].count == 3
    assert client.live() is True


def test_ready_reports_a_server_that_is_not_ready_without_raising_or_retrying() -> None:
    body = {"status": "loading", "models": [{"name": "m", "version": 1, "state": "loading"}]}
    recorder = Recorder(httpx.Response(503, json=body, headers={"Retry-After": "1"}))
    client, sleeps = sync_client(recorder)
    readiness = client.ready()
    assert readiness.ready is False and readiness.status == "loading"
    assert readiness.models[0].state == "loading"
    assert len(recorder.requests) == 1 and sleeps == []


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("status", "error", "family"),
    [
        (400, BadRequest, ClientError),
        (401, Unauthorized, ClientError),
        (404, NotFound, ClientError),
        (405, ClientError, ClientError),
        (413, PayloadTooLarge, ClientError),
        (415, UnsupportedMediaType, ClientError),
        (422, InvalidInput, ClientError),
        (500, ModelFailed, ServerError),
        (502, ServerError, ServerError),
        (503, Unavailable, ServerError),
        (504, DeadlineExceeded, ServerError),
    ],
)
def test_each_status_raises_its_exception_with_the_servers_message(
    status: int, error: type[SynergyError], family: type[SynergyError]
) -> None:
    message = f"what is wrong with this request ({status})"
    client, _ = sync_client(Recorder(httpx.Response(status, json={"error": message})))
    with pytest.raises(error) as raised:
        client.predict("iris-knn", [[1, 2, 3, 4]])
    assert type(raised.value) is error and isinstance(raised.value, family)
    assert raised.value.status == status
    assert raised.value.message == message
    assert str(raised.value) == f"HTTP {status}: {message}"


def test_an_answer_not_in_the_servers_shape_still_says_what_came_back() -> None:
    proxy = httpx.Response(
        502, text="<html>Bad Gateway</html>", headers={"Content-Type": "text/html"}
    )
    client, _ = sync_client(Recorder(proxy))
    with pytest.raises(ServerError) as raised:
        client.models()
    assert raised.value.status == 502 and "<html>Bad Gateway</html>" in raised.value.message
    client, _ = sync_client(Recorder(httpx.Response(200, text="hello")))
    with pytest.raises(SynergyError, match="without JSON"):
        client.models()
    client, _ = sync_client(Recorder(httpx.Response(200, json={"name": "another service"})))
    with pytest.raises(SynergyError, match=r"unexpected shape \(KeyError: 'models'\)"):
        client.models()


def test_no_answer_is_a_network_error_and_a_predict_is_not_sent_again() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    client, sleeps = sync_client(refuse)
    with pytest.raises(
        NetworkError, match=r"could not reach http://serve\.test/prefix/v1/models/iris-knn:predict"
    ) as raised:
        client.predict("iris-knn", [[1, 2, 3, 4]])
    assert raised.value.status is None and len(calls) == 1 and sleeps == []


def _trickle(seconds_per_byte: float, total_bytes: int) -> Iterator[bytes]:
    yield b'{"predictions": ['
    for _ in range(total_bytes):
        time.sleep(seconds_per_byte)
        yield b" "


def test_the_timeout_bounds_the_whole_call_however_slowly_the_server_answers() -> None:
    # A server that answers a byte every 0.2 s for 100 s: every read is quick, the call not.
    client, _ = sync_client(
        lambda request: httpx.Response(200, content=_trickle(0.2, 500)), timeout=1.0
    )
    started = time.monotonic()
    with pytest.raises(NetworkError, match="within the timeout"):
        client.predict("iris-knn", [[1, 2, 3, 4]])
    assert time.monotonic() - started < 10  # 1 s and a byte, on any machine; not 100 s


@pytest.mark.anyio
async def test_the_async_timeout_bounds_the_whole_call() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"predictions": ['
        for _ in range(500):
            await asyncio.sleep(0.2)
            yield b" "

    client, _ = async_client(lambda request: httpx.Response(200, content=trickle()), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(NetworkError, match="within the timeout"):
        await client.predict("iris-knn", [[1, 2, 3, 4]])
    assert time.monotonic() - started < 10


def test_a_retry_that_would_outlast_the_timeout_is_not_waited_for() -> None:
    client, sleeps = sync_client(Recorder(unavailable("3"), ok()), timeout=2.0)
    with pytest.raises(Unavailable):
        client.predict("iris-knn", [[1, 2, 3, 4]])
    assert sleeps == []


# ---------------------------------------------------------------------- retries
def test_a_503_is_retried_after_the_servers_retry_after() -> None:
    recorder = Recorder(unavailable("2"), unavailable("1"), ok())
    client, sleeps = sync_client(recorder)
    assert client.predict("iris-knn", [[1, 2, 3, 4]]).labels == ["setosa", "virginica"]
    assert sleeps == [2.0, 1.0]
    # The same request each time (a 503 means the server did no work).
    assert [r.content for r in recorder.requests] == [recorder.requests[0].content] * 3


def test_retries_are_bounded_and_the_last_503_is_raised() -> None:
    recorder = Recorder(unavailable("1", "model iris-knn version 1 is still loading"))
    client, sleeps = sync_client(recorder, max_retries=2)
    with pytest.raises(Unavailable, match="still loading") as raised:
        client.predict("iris-knn", [[1, 2, 3, 4]])
    assert raised.value.retry_after_s == 1.0
    assert len(recorder.requests) == 3 and sleeps == [1.0, 1.0]


@pytest.mark.parametrize("retry_after", ["30", "10.5", "later"])
def test_a_longer_wait_than_allowed_is_raised_at_once_not_shortened(retry_after: str) -> None:
    if retry_after == "later":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    recorder = Recorder(unavailable(retry_after, "model iris-knn version 1 failed to load"), ok())
    client, sleeps = sync_client(recorder)  # waits up to 10 s by default
    with pytest.raises(Unavailable, match="failed to load") as raised:
        client.predict("iris-knn", [[1, 2, 3, 4]])
    assert raised.value.retry_after_s is not None and raised.value.retry_after_s > 10
    assert len(recorder.requests) == 1 and sleeps == []
    client, sleeps = sync_client(Recorder(unavailable("10"), ok()))
    client.predict("iris-knn", [[1, 2, 3, 4]])
    assert sleeps == [10.0]


def test_http_dates_are_understood() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    client, sleeps = sync_client(
        Recorder(unavailable(soon), ok()), max_retry_wait_s=100, timeout=120
    )
    client.predict("iris-knn", [[1, 2, 3, 4]])
    assert 50 < sleeps[0] <= 60


@pytest.mark.parametrize(
    "response",
    [
        unavailable(retry_after=None),  # a proxy's 503 says nothing about when to come back
        unavailable(retry_after="soon"),
        httpx.Response(500, json={"error": "model failed on this batch"}),
        httpx.Response(504, json={"error": "deadline"}, headers={"Retry-After": "1"}),
        httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "1"}),
    ],
)
def test_only_a_503_with_retry_after_is_retried(response: httpx.Response) -> None:
    recorder = Recorder(response, ok())
    client, sleeps = sync_client(recorder)
    with pytest.raises(SynergyError):
        client.predict("iris-knn", [[1, 2, 3, 4]])
    assert len(recorder.requests) == 1 and sleeps == []


def test_max_retries_zero_never_retries() -> None:
    recorder = Recorder(unavailable("1"), ok())
    client, sleeps = sync_client(recorder, max_retries=0)
    with pytest.raises(Unavailable):
        client.predict("iris-knn", [[1, 2, 3, 4]])
    assert len(recorder.requests) == 1 and sleeps == []
    with pytest.raises(ValueError, match="max_retries"):
        SynergyClient(max_retries=-1)


# ---------------------------------------------------------------------- async
@pytest.mark.anyio
async def test_async_client_predicts_retries_and_raises_like_the_sync_one() -> None:
    recorder = Recorder(unavailable("3"), ok())
    client, sleeps = async_client(recorder, api_key="k")
    async with client:
        result = await client.predict("iris-knn", [[1, 2, 3, 4]], version=1)
        assert result.labels == ["setosa", "virginica"] and sleeps == [3.0]
        assert recorder.requests[0].url.path == "/prefix/v1/models/iris-knn/versions/1:predict"
        assert recorder.requests[0].headers["authorization"] == "Bearer k"
        await client.predict_text("imdb-sentiment", "Great!")
        assert recorder.bodies()[-1] == {"instances": ["Great!"]}
    client, _ = async_client(Recorder(httpx.Response(404, json={"error": "unknown model 'x'"})))
    with pytest.raises(NotFound, match="unknown model 'x'"):
        await client.card("x")
    client, sleeps = async_client(Recorder(unavailable("1")), max_retries=1)
    with pytest.raises(Unavailable):
        await client.predict_image("mnist-cnn", b"\x89PNG...")
    assert sleeps == [1.0]


# ---------------------------------------------------------------------- image inputs
def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _decoded(instance: Any) -> np.ndarray:
    assert set(instance) == {"b64"}
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(instance["b64"]))))


@pytest.fixture
def photo() -> np.ndarray:
    """A 40x30 grey picture (not the model's grid size)."""
    return np.random.default_rng(0).integers(0, 256, size=(30, 40), dtype=np.uint8)


def test_files_and_bytes_are_sent_as_they_are(tmp_path: Path, photo: np.ndarray) -> None:
    data = _png_bytes(photo)
    path = tmp_path / "digit.png"
    path.write_bytes(data)
    expected = {"b64": base64.b64encode(data).decode()}
    assert image_instance(path) == expected
    assert image_instance(str(path)) == expected
    assert image_instance(data) == expected
    assert image_instance(bytearray(data)) == expected
    with path.open("rb") as handle:
        assert image_instance(handle) == expected


def test_pil_images_and_other_arrays_are_encoded_to_png(photo: np.ndarray) -> None:
    np.testing.assert_array_equal(_decoded(image_instance(Image.fromarray(photo))), photo)
    np.testing.assert_array_equal(_decoded(image_instance(photo)), photo)
    rgb = np.stack([photo] * 3, axis=-1)
    np.testing.assert_array_equal(_decoded(image_instance(rgb)), rgb)
    # Floats are grey levels 0-255 like the grid: clipped and rounded down to bytes.
    floats = np.array([[-5.0, 12.7], [255.0, 300.0]])
    np.testing.assert_array_equal(_decoded(image_instance(floats)), [[0, 12], [255, 255]])


def test_float_images_in_0_1_are_scaled_to_full_range_not_blanked(photo: np.ndarray) -> None:
    # matplotlib.pyplot.imread gives PNGs as float32 in [0, 1], RGB or RGBA.
    fractions = photo.astype(np.float32) / 255.0
    np.testing.assert_array_equal(_decoded(image_instance(fractions)), photo)
    rgba = np.concatenate(
        [np.stack([fractions] * 3, axis=-1), np.ones((*photo.shape, 1), np.float32)], axis=-1
    )
    decoded = _decoded(image_instance(rgba))
    assert decoded.shape == (*photo.shape, 4)
    np.testing.assert_array_equal(decoded[..., 0], photo)
    assert (decoded[..., 3] == 255).all()


def test_a_28x28_array_is_sent_as_the_grid() -> None:
    grid = np.zeros((28, 28), dtype=np.uint8)
    grid[10:18, 13:15] = 255
    assert image_instance(grid) == grid.tolist()
    assert image_instance(grid[:, :, None]) == grid.tolist()
    assert image_instance(grid.astype(np.float32)) == grid.astype(float).tolist()


def test_unusable_images_are_refused_with_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="HxW"):
        image_instance(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="HxW"):
        image_instance(np.zeros(784))
    with pytest.raises(TypeError, match="file path, the bytes of an image file"):
        image_instance([[0] * 28] * 28)  # type: ignore[arg-type]


def test_a_list_of_images_is_a_batch_and_an_array_is_one_image(photo: np.ndarray) -> None:
    data = _png_bytes(photo)
    assert len(image_instances([data, Image.fromarray(photo), photo])) == 3
    assert len(image_instances(np.zeros((28, 28)))) == 1
    recorder = Recorder(ok())
    client, _ = sync_client(recorder)
    client.predict_image("mnist-cnn", [data, data], version=2)
    assert recorder.requests[0].url.path == "/prefix/v1/models/mnist-cnn/versions/2:predict"
    assert len(recorder.bodies()[0]["instances"]) == 2


# ---------------------------------------------------------------------- packaging
def test_the_client_needs_only_httpx() -> None:
    project = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["httpx"]
    assert project["name"] == "synergy-serve-client"
    assert (CLIENT_DIR / "synergy_client" / "py.typed").is_file()
    assert synergy_client.__version__ == project["version"]


# ---------------------------------------------------------------------- monitoring
def test_feedback_quotes_the_prediction_request_id() -> None:
    stored = {"model": "iris-knn", "version": 1, "request_id": "r-1", "rows": 2, "labelled": 1}
    recorder = Recorder(httpx.Response(200, json=IRIS, headers={"X-Request-ID": "r-1"}))
    client, _ = sync_client(recorder)
    with client:
        answer = client.predict("iris-knn", [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
        assert answer.request_id == "r-1"
        recorder.responses = [httpx.Response(200, json=stored)]
        assert client.feedback("iris-knn", answer, ["setosa", None]) == stored
        recorder.responses = [httpx.Response(404, json={"error": "no stored prediction"})]
        with pytest.raises(NotFound):
            client.feedback("iris-knn", "other", ["setosa"])
        recorder.responses = [httpx.Response(200, json={"model": "iris-knn", "versions": []})]
        assert client.monitoring("iris-knn", 1)["versions"] == []
    feedback_request = recorder.requests[1]
    assert str(feedback_request.url) == "http://serve.test/prefix/v1/models/iris-knn:feedback"
    assert json.loads(feedback_request.content) == {"request_id": "r-1", "labels": ["setosa", None]}
    assert str(recorder.requests[3].url).endswith("/v1/models/iris-knn/versions/1/monitoring")


@pytest.mark.anyio
async def test_async_feedback_and_monitoring() -> None:
    recorder = Recorder(httpx.Response(200, json={"model": "iris-knn", "versions": []}))
    client, _ = async_client(recorder)
    async with client:
        await client.feedback("iris-knn", "r-2", [None])
        await client.monitoring("iris-knn")
    assert json.loads(recorder.requests[0].content) == {"request_id": "r-2", "labels": [None]}
    assert str(recorder.requests[1].url).endswith("/v1/models/iris-knn/monitoring")


EXPLANATION = {
    "label": "virginica",
    "explained_label": "virginica",
    "attributions": {"petal_length": 0.3},
    "method": {"name": "exact Shapley values"},
}


def test_explain_sends_the_instances_to_explain_and_returns_the_explanations() -> None:
    recorder = Recorder(httpx.Response(200, json={"explanations": [EXPLANATION]}))
    client, _ = sync_client(recorder)
    with client:
        [explanation] = client.explain("iris-knn", [[6.7, 3.0, 5.2, 2.3]], version=2)
        client.explain_image("mnist-cnn", b"\x89PNG\r\n\x1a\nrest")
    assert explanation == EXPLANATION
    assert str(recorder.requests[0].url).endswith("/v1/models/iris-knn/versions/2:explain")
    assert recorder.bodies()[0] == {"instances": [[6.7, 3.0, 5.2, 2.3]]}
    assert str(recorder.requests[1].url).endswith("/v1/models/mnist-cnn:explain")
    assert list(recorder.bodies()[1]["instances"][0]) == ["b64"]


def test_explain_errors_raise_like_predictions() -> None:
    client, _ = sync_client(Recorder(httpx.Response(413, json={"error": "at most 16 instances"})))
    with client, pytest.raises(PayloadTooLarge) as raised:
        client.explain("iris-knn", [[6.7, 3.0, 5.2, 2.3]] * 17)
    assert raised.value.message == "at most 16 instances"


def test_model_ready_reads_a_degraded_model_with_its_failed_version() -> None:
    body = {
        "name": "iris-knn",
        "status": "degraded",
        "serving": True,
        "failed": [{"name": "iris-knn", "version": 3, "reason": "model.joblib: sha256 differs"}],
        "versions": [
            {"name": "iris-knn", "version": 2, "state": "ready"},
            {"name": "iris-knn", "version": 3, "state": "failed", "reason": "sha256 differs"},
        ],
    }
    recorder = Recorder(httpx.Response(503, json=body))
    client, sleeps = sync_client(recorder)
    with client:
        readiness = client.model_ready("iris-knn")
    assert (readiness.ready, readiness.status) == (False, "degraded")
    assert [(f.version, f.reason) for f in readiness.failed] == [
        (3, "model.joblib: sha256 differs")
    ]
    assert [v.state for v in readiness.models] == ["ready", "failed"]
    assert str(recorder.requests[0].url).endswith("/health/ready/iris-knn") and sleeps == []


@pytest.mark.anyio
async def test_async_explain_and_model_ready() -> None:
    recorder = Recorder(
        httpx.Response(200, json={"explanations": [EXPLANATION]}),
        httpx.Response(
            200,
            json={
                "name": "iris-knn",
                "status": "ready",
                "serving": True,
                "failed": [],
                "versions": [{"name": "iris-knn", "version": 2, "state": "ready"}],
            },
        ),
    )
    client, _ = async_client(recorder)
    async with client:
        assert await client.explain("iris-knn", [[6.7, 3.0, 5.2, 2.3]]) == [EXPLANATION]
        readiness = await client.model_ready("iris-knn")
    assert readiness.ready and readiness.status == "ready" and readiness.failed == ()
    assert str(recorder.requests[0].url).endswith("/v1/models/iris-knn:explain")
