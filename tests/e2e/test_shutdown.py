"""SIGTERM under load: readiness 503 at once, new work refused, in-flight work finished, exit 0."""

from __future__ import annotations

import signal
import threading
import time
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
    # Small batches make 200-instance requests take a while, so they are in flight at SIGTERM.
    server = start_server(
        tmp_path / "server.log",
        SYNERGY_MAX_BATCH_SIZE="4",
        SYNERGY_MAX_QUEUE_ROWS="4096",
        SYNERGY_SHUTDOWN_GRACE_PERIOD_S="60",
    )
    card = ModelCard.read(COMMITTED_MODELS / "mnist-cnn" / "1")
    digit = card.examples[0].instance
    body = {"instances": [digit] * 200}
    results: list[Any] = []

    def call() -> None:
        try:
            response = httpx.post(
                f"{server.url}/v1/models/mnist-cnn:predict", json=body, timeout=60
            )
            results.append(response)
        except httpx.HTTPError as exc:  # a lost request
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # all 12 are accepted and queued (2400 rows at 4 per batch)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    ready = httpx.get(f"{server.url}/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["status"] == "shutting down"
    late = httpx.post(
        f"{server.url}/v1/models/mnist-cnn:predict", json={"instances": [digit]}, timeout=5
    )
    assert late.status_code == 503 and "shutting down" in late.json()["error"]
    assert late.headers["retry-after"] and late.headers["connection"] == "close"
    for thread in threads:
        thread.join(timeout=90)
    assert server.process.wait(timeout=90) == 0
    assert len(results) == 12
    lost = [r for r in results if not isinstance(r, httpx.Response) or r.status_code != 200]
    assert lost == [], lost
    labels = {p["label"] for r in results for p in r.json()["predictions"]}
    assert labels == {card.examples[0].label}
    assert np.isfinite(
        [list(p["probabilities"].values()) for r in results for p in r.json()["predictions"]]
    ).all()
