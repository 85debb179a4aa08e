"""Every bad input gets the right 4xx and a clear {"error"}; none of it reaches a model."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import MODEL_NAMES, assert_error, model_batches, predict, running_app

IRIS = [5.1, 3.5, 1.4, 0.2]
GRID = [[0] * 28 for _ in range(28)]
# A valid grid (a vertical stroke): a blank one is refused as such.
STROKE = [
    [255 if 12 <= column < 16 and 4 <= row < 24 else 0 for column in range(28)] for row in range(28)
]


def _b64_png(width: int, height: int, colour: int = 0) -> str:
    buffer = io.BytesIO()
    Image.new("L", (width, height), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def small_limits(tiny_models_dir: Path) -> Iterator[Any]:
    """An app with tight limits, so limit errors are cheap to trigger."""
    with running_app(
        tiny_models_dir,
        max_instances=5,
        max_body_bytes=4096,
        max_image_pixels=10_000,
        max_text_chars=50,
    ) as client:
        yield client


CASES: list[tuple[str, Any, int, tuple[str, ...]]] = [
    # model, instances, status, fragments of the message
    ("iris-knn", [[5.1, 3.5, 1.4]], 422, ("instances[0]", "at least 4", "sepal_length")),
    ("iris-knn", [[5.1, 3.5, 1.4, 0.2, 9.9]], 422, ("at most 4",)),
    (
        "iris-knn",
        [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}],
        422,
        ("instances[0].petal_width", "Field required"),
    ),
    (
        "iris-knn",
        [
            {
                **dict(
                    zip(
                        ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                        IRIS,
                        strict=True,
                    )
                ),
                "colour": 1,
            }
        ],
        422,
        ("colour", "Extra"),
    ),
    ("iris-knn", [["5.1", 3.5, 1.4, 0.2]], 422, ("instances[0][0]", "valid number")),
    ("iris-knn", [[True, 3.5, 1.4, 0.2]], 422, ("instances[0][0]", "valid number")),
    ("iris-knn", [None], 422, ("instances[0]",)),
    ("iris-knn", [], 422, ("empty",)),
    ("binary-mlp", [[0.1] * 19], 422, ("at least 20",)),
    ("binary-mlp", [[0.1] * 19 + [2e148]], 422, ("x19 is out of range", "float32")),
    ("iris-knn", [[5.1, -1e300, 1.4, 0.2]], 422, ("sepal_width is out of range",)),
    ("mnist-cnn", [GRID[:27]], 422, ("at least 28",)),
    ("mnist-cnn", [[row[:27] for row in GRID]], 422, ("instances[0][0]", "at least 28")),
    (
        "mnist-cnn",
        [[[0, 300] + [0] * 26, *GRID[1:]]],
        422,
        ("instances[0]: grey levels must be within 0-255", "found 300 at row 0, column 1"),
    ),
    (
        "mnist-cnn",
        [[*GRID[:5], [0] * 27 + [-1], *GRID[6:]]],
        422,
        ("found -1 at row 5, column 27",),
    ),
    ("mnist-cnn", [STROKE, {"b64": "!!!not base64!!!"}], 422, ("instances[1]: b64", "base64")),
    ("mnist-cnn", [{"b64": base64.b64encode(b"GIF89a garbage").decode()}], 422, ("image",)),
    ("mnist-cnn", [{"b64": _b64_png(40, 40, colour=255)}], 422, ("blank",)),
    ("mnist-cnn", [{"b64": "aGk=", "extra": 1}], 422, ("extra",)),
    ("imdb-sentiment", [""], 422, ("at least 1 character",)),
    ("imdb-sentiment", [42], 422, ("valid string",)),
]


@pytest.mark.parametrize(
    ("model", "instances", "status", "fragments"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_bad_instances(
    client: Any, model: str, instances: Any, status: int, fragments: tuple[str, ...]
) -> None:
    before = model_batches(client, model)
    assert_error(predict(client, model, instances), status, *fragments)
    assert model_batches(client, model) == before, "a bad request reached the model"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_refused(client: Any, token: str) -> None:
    body = f'{{"instances": [[5.1, 3.5, 1.4, {token}]]}}'
    response = client.post(
        "/v1/models/iris-knn:predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "finite number")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b'{"instances": [[5.1, 3.5', 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b"[[5.1, 3.5, 1.4, 0.2]]", 422, '{"instances": [...]}'),
        (b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', 422, '"instances" is missing'),
        (b'{"instances": [[5.1, 3.5, 1.4, 0.2]], "signature": 1}', 422, "signature"),
        (b'{"instances": 5}', 422, "valid array"),
        (b"\xff\xfe\x00garbage", 400, "not valid JSON"),
    ],
)
def test_malformed_bodies(client: Any, body: bytes, status: int, fragment: str) -> None:
    response = client.post(
        "/v1/models/iris-knn:predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, status, fragment)


def test_wrong_content_type_is_415(client: Any) -> None:
    response = client.post(
        "/v1/models/iris-knn:predict",
        content=json.dumps({"instances": [IRIS]}),
        headers={"Content-Type": "text/plain"},
    )
    assert_error(response, 415, "Content-Type: application/json")


def test_unknown_model_and_version_are_404_with_what_exists(client: Any) -> None:
    assert_error(predict(client, "resnet", [IRIS]), 404, "unknown model 'resnet'", "iris-knn")
    response = client.post("/v1/models/iris-knn/versions/7:predict", json={"instances": [IRIS]})
    assert_error(response, 404, "no version 7", "served versions: 1")
    response = client.post("/v1/models/iris-knn/versions/x:predict", json={"instances": [IRIS]})
    assert_error(response, 400, "'x' is not a model version")
    assert_error(client.get("/v1/models/resnet"), 404, "unknown model")


def test_path_traversal_in_model_names_is_just_an_unknown_model(client: Any) -> None:
    for name in ("..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "iris-knn%00"):
        response = client.post(f"/v1/models/{name}:predict", json={"instances": [IRIS]})
        assert response.status_code == 404, (name, response.text)
        assert set(response.json()) == {"error"}


def test_unknown_paths_and_methods_use_the_error_shape(client: Any) -> None:
    assert_error(client.get("/v1/nothing"), 404, "no such endpoint")
    assert_error(client.get("/v1/models/iris-knn:predict"), 405, "not allowed")


def test_predict_image_on_a_model_without_images_is_404(client: Any) -> None:
    response = client.post(
        "/v1/models/iris-knn:predict-image",
        files={"file": ("x.png", base64.b64decode(_b64_png(8, 8)), "image/png")},
    )
    assert_error(response, 404, "does not take images")


def test_predict_image_needs_a_file(client: Any) -> None:
    assert_error(client.post("/v1/models/mnist-cnn:predict-image", data={"x": "1"}), 422, "file")
    response = client.post(
        "/v1/models/mnist-cnn:predict-image",
        files={"file": ("x.png", b"\x89PNG\r\n\x1a\n truncated", "image/png")},
    )
    assert_error(response, 422, "image")


def test_too_many_instances_is_413(small_limits: Any) -> None:
    assert_error(
        predict(small_limits, "iris-knn", [IRIS] * 6), 413, "too many instances", "at most 5"
    )
    assert predict(small_limits, "iris-knn", [IRIS] * 5).status_code == 200


def test_body_over_the_limit_is_413_before_parsing(small_limits: Any) -> None:
    body = json.dumps({"instances": ["x" * 5000]})
    response = small_limits.post(
        "/v1/models/imdb-sentiment:predict",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "over the limit of 4096")


def test_image_with_too_many_pixels_is_413(small_limits: Any) -> None:
    response = predict(small_limits, "mnist-cnn", [{"b64": _b64_png(200, 200)}])
    assert_error(response, 413, "over the limit of 10000")


def test_text_over_the_limit_is_422(small_limits: Any) -> None:
    assert_error(predict(small_limits, "imdb-sentiment", ["a" * 51]), 422, "at most 50")
    assert predict(small_limits, "imdb-sentiment", ["good " * 10]).status_code == 200


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_server_still_serves_after_all_that(
    client: Any, name: str, tiny_models_dir: Path
) -> None:
    from app.schemas.card import ModelCard

    card = ModelCard.read(tiny_models_dir / name / "1")
    assert predict(client, name, [card.examples[0].instance]).status_code == 200


def test_an_unexpected_exception_is_a_500_json_with_the_request_id(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir) as app_client:
        service = app_client.app.state.service

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        service.v1.predict = broken
        response = predict(app_client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]])
        assert response.status_code == 500
        request_id = response.headers["x-request-id"]
        assert request_id in response.json()["error"]
        assert "a bug" not in response.json()["error"]  # details stay in the server log
