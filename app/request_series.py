"""The two series every request updates (`synergy_requests_total`, and
`synergy_request_duration_seconds`), kept as plain numbers and turned into Prometheus samples
when `/metrics` is scraped.

prometheus_client's `Counter.inc` and `Histogram.observe` validate and lock on every call: four
Python calls and two locks per request for the pair, a measurable share of a single-row
prediction's event-loop time. Both series are updated only on the event loop (HTTP requests
and gRPC calls are served there), so a child is a few attributes updated in place, and the
histogram's bucket is found by `bisect` (in C). The exposition is the one prometheus_client
writes for the same series: the same names, labels, buckets and `_created` samples.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


class CounterChild:
    """One label set's count (event loop only)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramChild:
    """One label set's bucket counts (not cumulative) and sum (event loop only)."""

    __slots__ = ("bounds", "counts", "created", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # Bucket `le=b` counts values <= b: the first bound not below the value.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class EventLoopCounter:
    """A labelled counter with prometheus_client's `labels(...).inc()` shape."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.children: dict[tuple[str, ...], CounterChild] = {}

    def labels(self, *values: str) -> CounterChild:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected")
            child = self.children[values] = CounterChild()
        return child

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            family.add_metric(values, child.value, created=child.created)
        return family


class EventLoopHistogram:
    """A labelled histogram with prometheus_client's `labels(...).observe()` shape."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self.children: dict[tuple[str, ...], HistogramChild] = {}

    def labels(self, *values: str) -> HistogramChild:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected")
            child = self.children[values] = HistogramChild(self.bounds)
        return child

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            counts, running, buckets = list(child.counts), 0, []
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
                running += count
                buckets.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
            family.add_metric(values, buckets, child.total)
            family.samples.append(
                Sample(
                    f"{self.name}_created",
                    dict(zip(self.labelnames, values, strict=True)),
                    child.created,
                )
            )
        return family


class EventLoopSeries:
    """The collector that exposes the series above on a registry."""

    def __init__(self, registry: CollectorRegistry, *series: EventLoopCounter | EventLoopHistogram):
        self.series = series
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        for series in self.series:
            yield series.family()

    def describe(self) -> Iterator[Metric]:
        # Declared up front, so a name clash with another series fails at registration.
        for series in self.series:
            yield (
                CounterMetricFamily(series.name, series.documentation, labels=series.labelnames)
                if isinstance(series, EventLoopCounter)
                else HistogramMetricFamily(
                    series.name, series.documentation, labels=series.labelnames
                )
            )
