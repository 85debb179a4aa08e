"""Hostile input: each gets a clear 4xx, the server keeps serving."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from tests.conftest import predict


def _huge_png(width: int, height: int) -> bytes:
    """A valid PNG header for a huge grey image with almost no data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)  # a few rows; the decoder never gets there
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buffer, format="JPEG")
    return buffer.getvalue()


def _error(response: Any, *statuses: int) -> str:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"}
    return str(body["error"])


def test_a_20000x20000_png_is_refused_before_decoding(client: Any) -> None:
    bomb = _huge_png(20000, 20000)
    assert len(bomb) < 10_000
    message = _error(predict(client, "mnist-cnn", [{"b64": base64.b64encode(bomb).decode()}]), 413)
    assert "too large" in message
    assert "decompression bomb" not in message  # Pillow's words stay in the log
    upload = client.post(
        "/v1/models/mnist-cnn:predict-image", files={"file": ("bomb.png", bomb, "image/png")}
    )
    assert "too large" in _error(upload, 413)
    # Below Pillow's own bomb threshold, the server's (much lower) pixel limit answers.
    big = _huge_png(6000, 6000)
    message = _error(predict(client, "mnist-cnn", [{"b64": base64.b64encode(big).decode()}]), 413)
    assert "6000x6000" in message and "over the limit of 4000000" in message


def test_a_truncated_jpeg_is_422(client: Any) -> None:
    truncated = _jpeg()[:300]
    message = _error(
        predict(client, "mnist-cnn", [{"b64": base64.b64encode(truncated).decode()}]), 422
    )
    assert "PNG or JPEG" in message
    upload = client.post(
        "/v1/models/mnist-cnn:predict-image", files={"file": ("cut.jpg", truncated, "image/jpeg")}
    )
    _error(upload, 422)


def test_deep_nesting_is_refused(client: Any) -> None:
    body = '{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(
        "/v1/models/iris-knn:predict", content=body, headers={"Content-Type": "application/json"}
    )
    _error(response, 400, 422)


def test_huge_arrays_are_refused(client: Any) -> None:
    # Over the body limit: refused from the Content-Length before anything is parsed.
    big = b'{"instances": [' + b"[1,2,3,4]," * 900_000 + b"[1,2,3,4]]}"
    response = client.post(
        "/v1/models/iris-knn:predict", content=big, headers={"Content-Type": "application/json"}
    )
    assert "over the limit" in _error(response, 413)
    # Under the body limit but too many instances.
    many = b'{"instances": [' + b"[1,2,3,4]," * 5000 + b"[1,2,3,4]]}"
    response = client.post(
        "/v1/models/iris-knn:predict", content=many, headers={"Content-Type": "application/json"}
    )
    assert "too many instances" in _error(response, 413)
    # One instance with a huge inner array: more values than any valid body can hold, refused
    # before parsing.
    wide = b'{"instances": [[' + b"1," * 500_000 + b"1]]}"
    response = client.post(
        "/v1/models/iris-knn:predict", content=wide, headers={"Content-Type": "application/json"}
    )
    assert "more than 1000 instances" in _error(response, 413)


def test_a_chunked_body_over_the_limit_is_413_while_streaming(client: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ["'
        for _ in range(10_000):
            yield b"x" * 1024
        yield b'"]}'

    response = client.post(
        "/v1/models/imdb-sentiment:predict",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert "over the limit" in _error(response, 413)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"instances": ["caf\xe9 latte"]}',  # Latin-1, not UTF-8
        b'{"instances": ["\xff\xfe\xfd"]}',
        b'\xef\xbb\xbf{"instances": ["with a BOM"]}',
    ],
)
def test_non_utf8_text_is_refused(client: Any, payload: bytes) -> None:
    response = client.post(
        "/v1/models/imdb-sentiment:predict",
        content=payload,
        headers={"Content-Type": "application/json"},
    )
    _error(response, 400)


def test_lone_surrogates_are_not_valid_json_text(client: Any) -> None:
    response = client.post(
        "/v1/models/imdb-sentiment:predict",
        content=b'{"instances": ["odd \\ud800 text"]}',
        headers={"Content-Type": "application/json"},
    )
    assert "not valid JSON" in _error(response, 400)


def test_the_server_is_fine_afterwards(client: Any) -> None:
    assert client.get("/health/ready").status_code == 200
    assert predict(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]]).status_code == 200
