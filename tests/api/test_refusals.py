"""Inputs the models cannot see are refused on every protocol and route, never guessed at.

Blank grids (any scale, any datatype) get the blank-image message; texts with no word the model
knows get "no known word". 0-1 scaled grids are read as 0-255 grids divided by 255.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.preprocessing.image import BLANK_MESSAGE
from tests.conftest import assert_error, card_examples, predict

BLANK = BLANK_MESSAGE.split(":")[0]  # "the image looks blank"
NO_WORD = "no known word was found"
NUMERIC_DTYPES = {"UINT8": "u1", "FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "FP16": "<f2"}


def _v2_json(client: Any, model: str, tensor: dict[str, Any]) -> Any:
    return client.post(f"/v2/models/{model}/infer", json={"inputs": [tensor]})


def _v2_binary(
    client: Any, model: str, name: str, datatype: str, shape: list[int], blob: bytes
) -> Any:
    tensor = {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": len(blob)},
    }
    head = json.dumps({"inputs": [tensor]}).encode()
    return client.post(
        f"/v2/models/{model}/infer",
        content=head + blob,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


def _grid(tiny_models_dir: Path) -> np.ndarray:
    return np.array(card_examples(tiny_models_dir, "mnist-cnn")[0][0], dtype=np.float64)


# ---------------------------------------------------------------- blank grids
BLANK_GRIDS = {
    "zeros": np.zeros((28, 28)),
    "ones (0-1 white page)": np.ones((28, 28)),
    "all 255": np.full((28, 28), 255.0),
    "flat grey": np.full((28, 28), 77.0),
    "faint speck": np.where(np.eye(28) > 0, 9.0, 0.0),
}


@pytest.mark.parametrize("grid", BLANK_GRIDS.values(), ids=BLANK_GRIDS.keys())
def test_a_blank_grid_is_refused_like_a_blank_png_on_v1(client: Any, grid: np.ndarray) -> None:
    as_ints = grid.astype(int).tolist()
    as_floats = (grid + 0.0).tolist()
    for instances in ([as_ints], [as_floats], [as_ints, as_ints]):  # fast path and batch
        assert_error(predict(client, "mnist-cnn", instances), 422, BLANK, "instances[0]")
    buffer = io.BytesIO()
    Image.fromarray(grid.astype(np.uint8)).save(buffer, format="PNG")
    as_png = predict(client, "mnist-cnn", [{"b64": base64.b64encode(buffer.getvalue()).decode()}])
    assert_error(as_png, 422, BLANK_MESSAGE)
    assert BLANK_MESSAGE in predict(client, "mnist-cnn", [as_ints]).json()["error"]


def test_a_blank_grid_after_a_good_one_names_its_index(client: Any, tiny_models_dir: Path) -> None:
    good = _grid(tiny_models_dir).astype(int).tolist()
    response = predict(client, "mnist-cnn", [good, np.zeros((28, 28), int).tolist()])
    assert_error(response, 422, BLANK, "instances[1]")


@pytest.mark.parametrize("datatype", NUMERIC_DTYPES)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_a_blank_grid_is_refused_on_v2_for_every_datatype(
    client: Any, datatype: str, binary: bool
) -> None:
    for value in (0, 1):
        grid = np.full((1, 28, 28), value)
        if binary:
            blob = grid.astype(NUMERIC_DTYPES[datatype]).tobytes()
            response = _v2_binary(client, "mnist-cnn", "image", datatype, [1, 28, 28], blob)
        else:
            tensor = {"name": "image", "datatype": datatype, "shape": [1, 28, 28]}
            response = _v2_json(client, "mnist-cnn", {**tensor, "data": grid.ravel().tolist()})
        assert_error(response, 400, BLANK_MESSAGE, "image[0]")


# ---------------------------------------------------------------- 0-1 scaled grids
def test_a_0_1_scaled_grid_is_read_as_the_same_digit_on_v1(
    client: Any, tiny_models_dir: Path
) -> None:
    grid = _grid(tiny_models_dir)
    reference = predict(client, "mnist-cnn", [grid.astype(int).tolist()]).json()
    scaled = (grid / 255.0).tolist()
    fast = predict(client, "mnist-cnn", [scaled])
    # An image file next to it sends the body down the validating path.
    buffer = io.BytesIO()
    Image.fromarray(grid.astype(np.uint8)).save(buffer, format="PNG")
    validated = predict(
        client, "mnist-cnn", [scaled, {"b64": base64.b64encode(buffer.getvalue()).decode()}]
    )
    for response in (fast, validated):
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(
            list(response.json()["predictions"][0]["probabilities"].values()),
            list(reference["predictions"][0]["probabilities"].values()),
            atol=1e-5,
        )


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64", "FP16"])
def test_a_0_1_scaled_grid_is_read_as_the_same_digit_on_v2(
    client: Any, tiny_models_dir: Path, datatype: str, binary: bool
) -> None:
    grid = _grid(tiny_models_dir)
    reference = predict(client, "mnist-cnn", [grid.astype(int).tolist()]).json()["predictions"]
    scaled = (grid / 255.0)[np.newaxis]
    if binary:
        blob = scaled.astype(NUMERIC_DTYPES[datatype]).tobytes()
        response = _v2_binary(client, "mnist-cnn", "image", datatype, [1, 28, 28], blob)
    else:
        tensor = {"name": "image", "datatype": datatype, "shape": [1, 28, 28]}
        response = _v2_json(client, "mnist-cnn", {**tensor, "data": scaled.ravel().tolist()})
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["label"]["data"] == [reference[0]["label"]]
    tolerance = 2e-2 if datatype == "FP16" else 1e-5  # FP16 rounds the grey levels
    np.testing.assert_allclose(
        outputs["probabilities"]["data"],
        list(reference[0]["probabilities"].values()),
        atol=tolerance,
    )


# ---------------------------------------------------------------- texts with no known word
UNREADABLE = ["   \n\t ", "<br /><br />", "!!! ... ??? ;-)", "asdf qwerty", "<p>&nbsp;</p>"]


@pytest.mark.parametrize("text", UNREADABLE)
def test_a_text_with_no_known_word_is_refused_on_v1(client: Any, text: str) -> None:
    assert_error(predict(client, "imdb-sentiment", [text]), 422, NO_WORD, "instances[0]")
    mixed = predict(client, "imdb-sentiment", ["a good film", text])
    assert_error(mixed, 422, NO_WORD, "instances[1]")


@pytest.mark.parametrize("text", UNREADABLE)
def test_a_text_with_no_known_word_is_refused_on_v2(client: Any, text: str) -> None:
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}
    assert_error(_v2_json(client, "imdb-sentiment", tensor), 400, NO_WORD, "text[0]")
    raw = text.encode()
    blob = struct.pack("<I", len(raw)) + raw
    binary = _v2_binary(client, "imdb-sentiment", "text", "BYTES", [1], blob)
    assert_error(binary, 400, NO_WORD, "text[0]")


def test_the_refusal_says_what_the_vocabulary_covers(client: Any) -> None:
    card = client.get("/v1/models/imdb-sentiment").json()["card"]
    message = predict(client, "imdb-sentiment", ["asdf"]).json()["error"]
    assert "English" in message and "words" in message
    assert card["input"]["language"] == "English"
    assert card["input"]["vocabulary_size"] >= 2


def test_one_known_word_among_unknown_ones_is_enough(client: Any) -> None:
    response = predict(client, "imdb-sentiment", ["asdf qwerty film <br />"])
    assert response.status_code == 200, response.text
