"""The payload log to an HTTP URL, in process: a local HTTP server on an ephemeral port
receives the CloudEvents batches; a dead or hanging URL never blocks or fails a prediction,
and what it could not take is dropped and counted."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import predict, running_app

IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


class Sink:
    """An HTTP server on 127.0.0.1 that records each POST (headers, body); `hang` makes it
    hold every request until `release` is set."""

    def __init__(self, hang: bool = False) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.hang = hang
        self.release = threading.Event()
        self.arrived = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.arrived.set()
                if sink.hang:
                    sink.release.wait(120)
                sink.received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Sink:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in list(self.received) for event in json.loads(body)]


@pytest.fixture(scope="module")
def iris_only(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("iris-only")
    shutil.copytree(tiny_models_dir / "iris-knn", models / "iris-knn")
    return models


def _dropped(client: Any) -> float:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "synergy_monitoring_dropped_rows_total"
                and sample.labels.get("sink") == "payload_log"
            ):
                return float(sample.value)
    return 0.0


def _wait(condition: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not within the bound"
        time.sleep(0.05)


def test_http_payload_log_posts_cloud_events_batches(iris_only: Path) -> None:
    with Sink() as sink, running_app(iris_only, payload_log=sink.url) as client:
        response = predict(client, "iris-knn", IRIS, headers={"X-Request-ID": "http-payload-1"})
        assert response.status_code == 200, response.text
        _wait(lambda: len([e for e in sink.events() if e["requestid"] == "http-payload-1"]) >= 2)
        headers, _ = sink.received[0]
        assert headers["Content-Type"] == "application/cloudevents-batch+json"
        mine = [e for e in sink.events() if e["requestid"] == "http-payload-1"]
        assert sorted(e["type"] for e in mine) == [
            "io.synergy.inference.request",
            "io.synergy.inference.response",
        ]
        for event in mine:
            assert event["specversion"] == "1.0"
            assert event["source"] == "/synergy-serve/models/iris-knn/versions/1"
        request = next(e for e in mine if e["type"].endswith(".request"))
        answer = next(e for e in mine if e["type"].endswith(".response"))
        rows = request["data"]["instances"]
        assert [[round(v, 4) for v in row] for row in rows] == IRIS
        assert answer["data"]["predictions"] == response.json()["predictions"]
        assert _dropped(client) == 0


def test_a_dead_payload_url_fails_no_prediction_and_counts_drops(iris_only: Path) -> None:
    # A port nothing listens on: every POST is refused.
    with Sink() as sink:
        url = sink.url
    with running_app(iris_only, payload_log=url) as client:
        for _ in range(3):
            assert predict(client, "iris-knn", IRIS).status_code == 200
        _wait(lambda: _dropped(client) >= 6)  # 3 requests of 2 rows, none delivered


def test_a_hanging_payload_url_never_blocks_predictions(
    iris_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sink holds every POST until released, and the logger would wait for it far longer
    # than this test: predictions that waited on the log could not finish before the release.
    monkeypatch.setattr("app.monitoring.payload_log.HTTP_TIMEOUT_S", 600.0)
    with (
        Sink(hang=True) as sink,
        running_app(iris_only, payload_log=sink.url, payload_log_queue_events=2) as client,
    ):
        statuses: list[int] = []

        def send() -> None:
            predict(client, "iris-knn", IRIS)  # the first batch: the sink now hangs
            sink.arrived.wait(60)
            statuses.extend(predict(client, "iris-knn", IRIS).status_code for _ in range(10))

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(120)
        assert not sender.is_alive(), "predictions waited for the hanging payload URL"
        assert sink.arrived.is_set() and not sink.received  # still held
        assert statuses == [200] * 10
        # The queue holds 2 events; the rest of the 10 requests' rows were dropped, counted.
        assert _dropped(client) >= (10 - 2) * len(IRIS)
        sink.release.set()
