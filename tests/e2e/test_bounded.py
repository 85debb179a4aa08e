"""Bounded cost per request (issue 13), on a real server with the committed models."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

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
