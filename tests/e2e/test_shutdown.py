"""SIGTERM under load: readiness 503 at once, new work refused, in-flight work finished, exit 0."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.schemas.card import ModelCard
from tests.conftest import COMMITTED_MODELS
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e


def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    """16 requests are held mid-upload (half the body sent) until SIGTERM has been handled,
    so they are in flight at the signal on any machine, however busy: no timer is raced."""
    server = start_server(
        tmp_path / "server.log",
        SYNERGY_MAX_BATCH_SIZE="2",
        SYNERGY_MAX_QUEUE_ROWS="8192",
        SYNERGY_SHUTDOWN_GRACE_PERIOD_S="60",
    )
    card = ModelCard.read(COMMITTED_MODELS / "mnist-cnn" / "1")
    digit = card.examples[0].instance
    body = json.dumps({"instances": [digit] * 300}).encode()
    release = threading.Event()
    results: list[Any] = []

    def held_body() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        release.wait(timeout=120)
        yield body[len(body) // 2 :]

    def call() -> None:
        try:
            response = httpx.post(
                f"{server.url}/v1/models/mnist-cnn:predict",
                content=held_body(),
                headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
                timeout=120,
            )
            results.append(response)
        except httpx.HTTPError as exc:  # a lost request
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120  # a bound for a stuck server, not a race
    while _in_flight(server.url) < 16 + 1:  # + the /metrics request itself
        assert time.monotonic() < deadline, "the 16 requests never all reached the server"
        time.sleep(0.05)
    server.process.send_signal(signal.SIGTERM)
    # Readiness turns 503 once the signal is handled: wait for that event.
    while (ready := httpx.get(f"{server.url}/health/ready", timeout=5)).status_code == 200:
        assert time.monotonic() < deadline, "SIGTERM was never handled"
        time.sleep(0.05)
    assert ready.status_code == 503 and ready.json()["status"] == "shutting down"
    late = httpx.post(
        f"{server.url}/v1/models/mnist-cnn:predict", json={"instances": [digit]}, timeout=5
    )
    assert late.status_code == 503 and "shutting down" in late.json()["error"]
    assert late.headers["retry-after"] and late.headers["connection"] == "close"
    assert all(thread.is_alive() for thread in threads), "a held request ended before release"
    release.set()
    for thread in threads:
        thread.join(timeout=120)
    assert server.process.wait(timeout=120) == 0
    assert len(results) == 16
    lost = [r for r in results if not isinstance(r, httpx.Response) or r.status_code != 200]
    assert lost == [], lost
    labels = {p["label"] for r in results for p in r.json()["predictions"]}
    assert labels == {card.examples[0].label}
    assert np.isfinite(
        [list(p["probabilities"].values()) for r in results for p in r.json()["predictions"]]
    ).all()


def _in_flight(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text):
        if family.name == "synergy_requests_in_flight":
            return sum(sample.value for sample in family.samples)
    return 0.0
