"""Bounded cost per request (issue 13): formats, pixel budgets, large bodies off the loop."""

from __future__ import annotations

import base64
import gzip
import io
import json
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_error, predict, running_app


def _saved(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def _digit(format: str = "PNG", side: int = 28) -> bytes:
    canvas = np.zeros((side, side), np.uint8)
    canvas[side // 4 : -side // 4, side // 2 - 2 : side // 2 + 2] = 255
    return _saved(Image.fromarray(canvas), format)


def _v2_images(images: list[bytes], *, binary: bool) -> tuple[bytes, dict[str, str]]:
    tensor: dict[str, Any] = {"name": "image", "datatype": "BYTES", "shape": [len(images)]}
    if not binary:
        tensor["data"] = [base64.b64encode(image).decode() for image in images]
        return json.dumps({"inputs": [tensor]}).encode(), {"Content-Type": "application/json"}
    raw = b"".join(struct.pack("<I", len(image)) + image for image in images)
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps({"inputs": [tensor]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


@pytest.mark.parametrize("format", ["BMP", "TIFF", "GIF", "ICO", "TGA", "WEBP"])
def test_formats_other_than_png_and_jpeg_are_refused_on_every_route(
    client: Any, format: str
) -> None:
    image = _saved(Image.new("RGB", (28, 28), (0, 0, 0)), format)
    response = predict(client, "mnist-cnn", [{"b64": base64.b64encode(image).decode()}])
    assert_error(response, 422, "instances[0]", "send a PNG or JPEG file")
    response = client.post(
        "/v1/models/mnist-cnn:predict-image", files={"file": ("digit", image, "image/x")}
    )
    assert_error(response, 422, "send a PNG or JPEG file")
    for binary in (False, True):
        body, headers = _v2_images([_digit(), image], binary=binary)
        response = client.post("/v2/models/mnist-cnn/infer", content=body, headers=headers)
        assert_error(response, 400, "input image[1]", "send a PNG or JPEG file")


def test_png_and_jpeg_still_work_on_every_route(client: Any) -> None:
    for format in ("PNG", "JPEG"):
        image = _digit(format, side=280)
        response = predict(client, "mnist-cnn", [{"b64": base64.b64encode(image).decode()}])
        assert response.status_code == 200, response.text
        response = client.post(
            "/v1/models/mnist-cnn:predict-image", files={"file": ("d", image, "image/png")}
        )
        assert response.status_code == 200, response.text
        body, headers = _v2_images([image, image], binary=True)
        response = client.post("/v2/models/mnist-cnn/infer", content=body, headers=headers)
        assert response.status_code == 200, response.text


def test_a_request_may_decode_only_so_many_pixels(tiny_models_dir: Path) -> None:
    image = _digit(side=100)  # 10,000 pixels each
    with running_app(tiny_models_dir, max_request_image_pixels=25_000) as client:
        two = [{"b64": base64.b64encode(image).decode()}] * 2
        assert predict(client, "mnist-cnn", two).status_code == 200
        response = predict(client, "mnist-cnn", two + two[:1])
        assert_error(response, 413, "instances[2]", "over the limit of 25000 per request")
        body, headers = _v2_images([image] * 3, binary=True)
        response = client.post("/v2/models/mnist-cnn/infer", content=body, headers=headers)
        assert_error(response, 413, "input image[2]", "per request")


def test_large_bodies_are_parsed_on_a_decoding_thread(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.v2

    service = client.app.state.service
    threads: list[str] = []
    json_rows, decompress = service.json_rows, app.v2.decompress_body

    def recording_json_rows(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return json_rows(*args)

    def recording_decompress(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return decompress(*args)

    monkeypatch.setattr(service, "json_rows", recording_json_rows)
    monkeypatch.setattr(app.v2, "decompress_body", recording_decompress)
    grids = [[[float(9 * v) for v in range(28)]] * 28] * 40  # ~150 KB of JSON, not blank
    assert predict(client, "mnist-cnn", grids).status_code == 200
    tensor = {"name": "image", "datatype": "FP32", "shape": [40, 28, 28], "data": grids}
    compressed = gzip.compress(json.dumps({"inputs": [tensor]}).encode())
    assert len(compressed) < 8_000  # small on the wire, large to parse
    response = client.post(
        "/v2/models/mnist-cnn/infer",
        content=compressed,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert len(threads) == 2 and all(name.startswith("decode") for name in threads), threads


def test_a_small_body_inflating_to_millions_of_values_is_refused_unparsed(client: Any) -> None:
    data = b"0," * 3_999_000 + b"0"
    body = b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1000, 28, 28], "data": ['
    compressed = gzip.compress(body + data + b"]}]}", 9)
    assert len(compressed) < 20_000
    response = client.post(
        "/v2/models/mnist-cnn/infer",
        content=compressed,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_error(response, 413, "more than 1000 instances of model mnist-cnn can have")
