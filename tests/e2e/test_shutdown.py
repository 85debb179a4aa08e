"""SIGTERM under load: readiness 503 at once, new work refused, in-flight work finished, exit 0."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.schemas.card import ModelCard
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e


def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    # Tiny batches make 300-instance requests take a while (seconds of work queued), so they
    # are still in flight at SIGTERM and for the checks right after it.
    server = start_server(
        tmp_path / "server.log",
        SYNERGY_MAX_BATCH_SIZE="2",
        SYNERGY_MAX_QUEUE_ROWS="8192",
        SYNERGY_SHUTDOWN_GRACE_PERIOD_S="60",
    )
    card = ModelCard.read(COMMITTED_MODELS / "mnist-cnn" / COMMITTED_VERSION)
    digit = card.examples[0].instance
    body = json.dumps({"instances": [digit] * 300}).encode()
    results: list[Any] = []

    def call() -> None:
        try:
            response = httpx.post(
                f"{server.url}/v1/models/mnist-cnn:predict",
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            results.append(response)
        except httpx.HTTPError as exc:  # a lost request
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    # SIGTERM once the server has all 16 (4,800 rows to do, 2 per batch: seconds of work).
    deadline = time.monotonic() + 30
    while _in_flight(server.url) < 16 + 1:  # + the /metrics request itself
        assert time.monotonic() < deadline, "the 16 requests never all reached the server"
        time.sleep(0.05)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    late = httpx.post(
        f"{server.url}/v1/models/mnist-cnn:predict", json={"instances": [digit]}, timeout=5
    )
    assert late.status_code == 503 and "shutting down" in late.json()["error"]
    assert late.headers["retry-after"] and late.headers["connection"] == "close"
    ready = httpx.get(f"{server.url}/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["status"] == "shutting down"
    assert any(thread.is_alive() for thread in threads), "nothing was in flight at SIGTERM"
    for thread in threads:
        thread.join(timeout=90)
    assert server.process.wait(timeout=90) == 0
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
