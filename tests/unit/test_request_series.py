"""The per-request series kept as plain numbers expose exactly what prometheus_client's
Counter and Histogram expose for the same observations."""

from __future__ import annotations

import random
import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from app.request_series import EventLoopCounter, EventLoopHistogram, EventLoopSeries
from app.series import LATENCY_BUCKETS_S


def _without_created_times(text: bytes) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text.decode())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_exposition_is_prometheus_clients(seed: int) -> None:
    rng = random.Random(seed)
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("synergy_requests_total", "doc", ["model", "status"], registry=theirs)
    histogram = Histogram(
        "synergy_request_duration_seconds",
        "doc",
        ["model"],
        buckets=LATENCY_BUCKETS_S,
        registry=theirs,
    )
    fast_counter = EventLoopCounter("synergy_requests_total", "doc", ["model", "status"])
    fast_histogram = EventLoopHistogram(
        "synergy_request_duration_seconds", "doc", ["model"], LATENCY_BUCKETS_S
    )
    EventLoopSeries(ours, fast_counter, fast_histogram)
    # Values on the bucket bounds too: `le` counts a value equal to the bound.
    values = [*LATENCY_BUCKETS_S, 0.0, 11.0, *(rng.random() * 3 for _ in range(500))]
    for value in values:
        model, status = rng.choice("ab"), rng.choice(["200", "422"])
        counter.labels(model, status).inc()
        fast_counter.labels(model, status).inc()
        histogram.labels(model).observe(value)
        fast_histogram.labels(model).observe(value)
    assert _without_created_times(generate_latest(ours)) == _without_created_times(
        generate_latest(theirs)
    )


def test_a_wrong_number_of_label_values_is_refused() -> None:
    with pytest.raises(ValueError, match="2 label values"):
        EventLoopCounter("c_total", "doc", ["a", "b"]).labels("x")
    with pytest.raises(ValueError, match="1 label values"):
        EventLoopHistogram("h", "doc", ["a"], (1.0,)).labels("x", "y")


def test_a_name_clash_fails_at_registration() -> None:
    registry = CollectorRegistry()
    Counter("synergy_requests_total", "doc", registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        EventLoopSeries(registry, EventLoopCounter("synergy_requests_total", "doc", []))
