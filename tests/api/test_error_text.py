"""Every error body says what is wrong in the project's words: no exception text, class
reprs, library internals or paths reach a client (the server log keeps the details)."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from tests.conftest import predict

INTERNALS = ("<class", "Errno", "PngImagePlugin", "MAX_TEXT_CHUNK", "DOS attack", "Error -3",
             "Incorrect padding", "binascii", "Traceback", "/tmp", "/work")  # fmt: skip


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return struct.pack(">I", len(data)) + kind + data + crc


def _png(width: int, height: int, *extra: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * height)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + b"".join(extra) + _chunk(
        b"IDAT", rows
    ) + _chunk(b"IEND", b"")  # fmt: skip


def _assert_clean(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    message = str(response.json()["error"])
    for internal in INTERNALS:
        assert internal not in message, (internal, message)
    return message


def _b64(data: bytes) -> list[Any]:
    return [{"b64": base64.b64encode(data).decode()}]


def test_a_png_text_chunk_bomb_is_described_not_quoted(client: Any) -> None:
    text_bomb = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * 4_000_000, 9))
    message = _assert_clean(predict(client, "mnist-cnn", _b64(_png(28, 28, text_bomb))), 422)
    assert "could not be decoded" in message


def test_a_pixel_bomb_is_described_not_quoted(client: Any) -> None:
    message = _assert_clean(predict(client, "mnist-cnn", _b64(_png(20000, 20000))), 413)
    assert "too large" in message


def test_bad_base64_is_described_not_quoted(client: Any) -> None:
    _assert_clean(predict(client, "mnist-cnn", [{"b64": "abc"}]), 422)


def test_a_form_field_instead_of_a_file_names_no_class(client: Any) -> None:
    response = client.post("/v1/models/mnist-cnn:predict-image", data={"file": "not a file"})
    assert "file upload" in _assert_clean(response, 422)


def test_a_corrupt_gzip_v2_body_is_described_not_quoted(client: Any) -> None:
    response = client.post(
        "/v2/models/iris-knn/infer",
        content=b"\x1f\x8b not gzip at all",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert "not valid gzip" in _assert_clean(response, 400)


def test_a_model_that_fails_on_a_batch_does_not_show_its_exception(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = client.app.state.service.registry.get_ready("iris-knn").model

    def fail(_: Any) -> Any:
        raise ValueError("could not read /tmp/secret/weights.bin: <class 'str'>")

    monkeypatch.setattr(model, "predict", fail)
    message = _assert_clean(predict(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]]), 500)
    assert "failed on this batch" in message and "secret" not in message
