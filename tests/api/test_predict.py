"""Predictions for every model and input form, in-process with the lifespan running."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.kinds import bound_probabilities
from app.kinds.base import DEFAULT_PROBABILITY_FLOOR as PROBABILITY_FLOOR
from app.preprocessing.image import image_bytes_to_mnist
from app.schemas.card import ModelCard
from tests.conftest import MODEL_NAMES, assert_same_predictions, predict


def _card(models_dir: Path, name: str) -> ModelCard:
    return ModelCard.read(models_dir / name / "1")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_reproduces_its_training_time_predictions(
    client: Any, tiny_models_dir: Path, name: str
) -> None:
    card = _card(tiny_models_dir, name)
    response = predict(client, name, [e.instance for e in card.examples])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == name and body["version"] == 1
    assert len(body["predictions"]) == len(card.examples)
    for prediction, example in zip(body["predictions"], card.examples, strict=True):
        assert list(prediction["probabilities"]) == card.labels
        probabilities = list(prediction["probabilities"].values())
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        # Served probabilities are bounded away from 0 and 1 (see docs/warnings.md).
        expected = bound_probabilities(np.array([example.probabilities or []]), PROBABILITY_FLOOR)
        np.testing.assert_allclose(probabilities, expected[0], atol=1e-5)
        assert min(probabilities) >= PROBABILITY_FLOOR * 0.999
        assert prediction["label"] == card.labels[int(np.argmax(probabilities))]


def test_predictions_come_back_in_request_order(client: Any, tiny_models_dir: Path) -> None:
    examples = [e.instance for e in _card(tiny_models_dir, "mnist-cnn").examples]
    order = [0, 1, 0, 2, 1, 3]
    single = [
        predict(client, "mnist-cnn", [examples[i]]).json()["predictions"][0] for i in range(4)
    ]
    batch = predict(client, "mnist-cnn", [examples[i] for i in order]).json()["predictions"]
    assert_same_predictions(batch, [single[i] for i in order])


def test_iris_accepts_named_features_or_a_list(client: Any) -> None:
    named = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
    listed = [6.7, 3.0, 5.2, 2.3]
    reordered = dict(reversed(list(named.items())))
    outputs = [
        predict(client, "iris-knn", [x]).json()["predictions"][0]
        for x in (named, listed, reordered)
    ]
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_version_can_be_named(client: Any, tiny_models_dir: Path) -> None:
    instance = _card(tiny_models_dir, "binary-mlp").examples[0].instance
    latest = predict(client, "binary-mlp", [instance]).json()
    pinned = client.post(
        "/v1/models/binary-mlp/versions/1:predict", json={"instances": [instance]}
    ).json()
    assert pinned == latest


def _png(array: np.ndarray, *, invert: bool = False, scale: int = 1) -> bytes:
    image = Image.fromarray((255 - array if invert else array).astype(np.uint8))
    if scale > 1:
        image = image.resize((28 * scale, 28 * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_mnist_takes_base64_images_of_any_size_and_polarity(
    client: Any, tiny_models_dir: Path
) -> None:
    digit = np.array(_card(tiny_models_dir, "mnist-cnn").examples[0].instance, dtype=np.uint8)
    pngs = [_png(digit), _png(digit, invert=True, scale=10)]
    response = predict(client, "mnist-cnn", [{"b64": base64.b64encode(p).decode()} for p in pngs])
    assert response.status_code == 200, response.text
    # The server converts each file with the training code's MNIST conversion: the same
    # predictions come back as for the grids that conversion gives.
    grids = [image_bytes_to_mnist(p, max_pixels=10**6).tolist() for p in pngs]
    via_grids = predict(client, "mnist-cnn", grids)
    assert_same_predictions(response.json()["predictions"], via_grids.json()["predictions"])
    # Dark-on-light at 280x280 becomes (nearly) the same digit as light-on-dark at 28x28.
    assert np.abs(np.subtract(*grids)).mean() < 10


def test_mnist_multipart_upload(client: Any, tiny_models_dir: Path) -> None:
    digit = np.array(_card(tiny_models_dir, "mnist-cnn").examples[1].instance, dtype=np.uint8)
    png = _png(digit, invert=True, scale=4)
    response = client.post(
        "/v1/models/mnist-cnn:predict-image", files={"file": ("digit.png", png, "image/png")}
    )
    assert response.status_code == 200, response.text
    via_b64 = predict(client, "mnist-cnn", [{"b64": base64.b64encode(png).decode()}]).json()
    assert_same_predictions(response.json()["predictions"], via_b64["predictions"])


def test_imdb_takes_raw_text_with_markup(client: Any) -> None:
    texts = ["A <i>wonderful</i> film.<br /><br />Loved it!", "zzzz qqqq film"]
    response = predict(client, "imdb-sentiment", texts)
    assert response.status_code == 200
    assert all(
        set(p["probabilities"]) == {"negative", "positive"} for p in response.json()["predictions"]
    )
