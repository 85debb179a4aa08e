"""What Triton's statistics cost on the hot path: the batcher observer with and without a
version's `ExecutionStats` (per batch, on the worker thread), and `ServingStats.record_request`
(per request, on the event loop), in nanoseconds per call.

    python bench/stats_cost.py [--calls 200000]

Same process, same Prometheus children, alternating A (no execution stats, as before) and B
(with) for 5 rounds; prints the best round of each (the least disturbed by a shared machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.metrics import BatcherMetrics, Metrics, ServingStats


def per_call_ns(function: Callable[[], object], calls: int) -> float:
    """Nanoseconds per call of `function()`."""
    started = time.perf_counter_ns()
    for _ in range(calls):
        function()
    return (time.perf_counter_ns() - started) / calls


def batch(observer: BatcherMetrics, waits: list[float]) -> None:
    """What the batcher reports for one batch of len(waits) one-row requests."""
    observer.rows_started(waits)
    observer.batch_done(len(waits), 0.0012, False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    metrics = Metrics()
    print("| per batch: request segments in it | without stats, ns | with stats, ns | added, ns |")
    print("|---:|---:|---:|---:|")
    for segments in (1, 8, 64):
        waits = [0.0004] * segments
        without = metrics.batch_observer("bench", 1)
        with_stats = metrics.batch_observer("bench", 2, ServingStats())

        best = {"a": float("inf"), "b": float("inf")}
        calls = max(args.calls // segments, 1000)
        for _ in range(5):
            best["a"] = min(best["a"], per_call_ns(partial(batch, without, waits), calls))
            best["b"] = min(best["b"], per_call_ns(partial(batch, with_stats, waits), calls))
        print(
            f"| {segments} | {best['a']:,.0f} | {best['b']:,.0f} | {best['b'] - best['a']:,.0f} |"
        )
    stats = ServingStats()
    best_request = min(
        per_call_ns(lambda: stats.record_request(200, 0.0015), args.calls) for _ in range(5)
    )
    print(f"\nServingStats.record_request (a success, with the Triton sums): {best_request:.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
