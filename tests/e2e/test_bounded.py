"""Bounded cost per request (issue 13), on a real server with the committed models."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import Server

# Finite float32, but the committed MLP's arithmetic overflows on it (NaN out).
OVERFLOWING = [3e38] * 20


def _error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message


def test_values_the_model_cannot_compute_are_a_client_error_naming_the_input(
    server: Server,
) -> None:
    response = httpx.post(
        f"{server.url}/v1/models/binary-mlp:predict",
        json={"instances": [[0.1] * 20, OVERFLOWING]},
        timeout=10,
    )
    _error(response, 422, "instances[1]", "x0 = 3e+38", "out of the range the model can compute")
    body = {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP32",
                "shape": [2, 20],
                "data": [[0.1] * 20, OVERFLOWING],
            }
        ]
    }
    response = httpx.post(f"{server.url}/v2/models/binary-mlp/infer", json=body, timeout=10)
    _error(response, 400, "input features[1]", "out of the range the model can compute")


def test_only_the_request_the_model_cannot_compute_fails(server: Server) -> None:
    def call(instances: list[Any]) -> int:
        url = f"{server.url}/v1/models/binary-mlp:predict"
        return httpx.post(url, json={"instances": instances}, timeout=10).status_code

    bodies = [[OVERFLOWING] if i % 4 == 0 else [[0.1 * i] * 20] for i in range(48)]
    with ThreadPoolExecutor(16) as pool:  # many of them share a batch
        statuses = list(pool.map(call, bodies))
    assert statuses == [422 if i % 4 == 0 else 200 for i in range(48)]


def _v2_images(images: list[bytes]) -> tuple[bytes, dict[str, str]]:
    raw = b"".join(struct.pack("<I", len(image)) + image for image in images)
    tensor = {
        "name": "image",
        "datatype": "BYTES",
        "shape": [len(images)],
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps({"inputs": [tensor]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def test_a_client_that_hangs_up_stops_the_decoding_and_is_logged_as_499(server: Server) -> None:
    canvas = Image.new("RGBA", (560, 560), (255, 255, 255, 0))
    canvas.paste(Image.new("RGBA", (56, 280), (0, 0, 0, 255)), (280, 140))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    body, headers = _v2_images([buffer.getvalue()] * 100)  # ~0.5 s of decoding at least
    request_id = f"hang-up-{time.monotonic_ns()}"
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
        sock.sendall(
            f"POST /v2/models/mnist-cnn/infer HTTP/1.1\r\nHost: x\r\nX-Request-ID: {request_id}"
            f"\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [
            json.loads(line)
            for line in server.log.read_text(errors="replace").splitlines()
            if request_id in line and line.startswith("{")
        ]
        access = [line for line in lines if line.get("status") is not None]
        if access:
            assert access[0]["status"] == 499, access
            break
        time.sleep(0.2)
    else:
        pytest.fail("the hung-up request was never logged")
