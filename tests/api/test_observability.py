"""Prometheus /metrics, request ids."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import predict


def _families(client: Any) -> dict[str, Any]:
    text = client.get("/metrics").text
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_prometheus_exposition_parses_and_has_every_series(client: Any) -> None:
    predict(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]])
    predict(client, "iris-knn", [[5.1]])
    families = _families(client)
    for name in (
        "synergy_requests",
        "synergy_request_duration_seconds",
        "synergy_requests_in_flight",
        "synergy_batch_size_rows",
        "synergy_queue_wait_seconds",
        "synergy_inference_duration_seconds",
        "synergy_queue_rows",
        "synergy_model_ready",
        "synergy_predictions",
        "synergy_batch_failures",
        "process_resident_memory_bytes",
        "python_gc_objects_collected",
    ):
        assert name in families, name
    requests = {
        (s.labels["model"], s.labels["endpoint"], s.labels["status"]): s.value
        for s in families["synergy_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("iris-knn", "predict", "200")] >= 1
    assert requests[("iris-knn", "predict", "422")] >= 1
    ready = {s.labels["model"]: s.value for s in families["synergy_model_ready"].samples}
    assert ready == {"binary-mlp": 1.0, "imdb-sentiment": 1.0, "iris-knn": 1.0, "mnist-cnn": 1.0}
    buckets = [
        float(s.labels["le"])
        for s in families["synergy_request_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
    ]
    # Fine enough to read a p99 anywhere between 1 ms and 5 s.
    assert min(buckets) <= 0.001 and max(buckets) >= 5.0 and len(set(buckets)) >= 15


def test_request_id_is_returned_and_accepted(client: Any) -> None:
    generated = client.get("/health/live").headers["x-request-id"]
    assert uuid.UUID(generated).version == 7  # time-ordered: see app.context.new_request_id
    echoed = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    unsafe = client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"
