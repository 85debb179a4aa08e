"""The payload log on stdout of a real server process: CloudEvents 1.0 JSON lines, the request
and the response of a prediction under its X-Request-ID, among the server's other output."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import COMMITTED_MODELS
from tests.e2e.conftest import start_server

IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def _events(log: Path, request_id: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """The payload events of `request_id` on the server's stdout, once both are there."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = log.read_bytes().splitlines()
        # Other lines (the server's logs) may be JSON too: events are what carries a specversion.
        events = [json.loads(line) for line in lines if b'"specversion"' in line]
        mine = [event for event in events if event["requestid"] == request_id]
        if len(mine) >= 2 or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)


def test_stdout_payload_log_holds_the_request_and_response_events(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS / "iris-knn", models / "iris-knn")
    log = tmp_path / "server.log"
    server = start_server(log, models, SYNERGY_PAYLOAD_LOG="stdout")
    try:
        response = httpx.post(
            f"{server.url}/v1/models/iris-knn:predict",
            json={"instances": IRIS},
            headers={"X-Request-ID": "stdout-payload-1"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        events = _events(log, "stdout-payload-1")
    finally:
        server.stop()
    assert sorted(event["type"] for event in events) == [
        "io.synergy.inference.request",
        "io.synergy.inference.response",
    ], log.read_text()[-3000:]
    for event in events:
        assert event["specversion"] == "1.0"
        assert event["source"].startswith("/synergy-serve/models/iris-knn/versions/")
        assert event["datacontenttype"] == "application/json"
        assert event["subject"] == "iris-knn" and event["time"].endswith("Z")
    request = next(e for e in events if e["type"].endswith(".request"))
    answer = next(e for e in events if e["type"].endswith(".response"))
    instances = request["data"]["instances"]
    assert [[round(value, 4) for value in row] for row in instances] == IRIS
    # The response event holds what the client was answered.
    assert answer["data"]["predictions"] == response.json()["predictions"]
