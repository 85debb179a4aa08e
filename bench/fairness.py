"""Fair admission (issue 13): bulk clients next to a single-row client, on one real server.

Scenarios against mnist-cnn, each for --seconds, every client a closed loop on its own
keep-alive connection (a thread here, the server a separate process):
1. two clients looping 1,000-row requests, one client looping single rows;
2. two clients looping 256-row requests.
Prints a table per client: requests, errors (status counts), p50/p99 latency.
Goals: 0 errors for everyone; single-row p99 <= 100 ms in scenario 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.schemas.card import ModelCard
from bench.common import ROOT, percentile, report, start_ours


def body_of(rows: int) -> bytes:
    """`rows` real MNIST test digits (the card's examples, repeated) as a :predict body."""
    folder = ROOT / "models" / "mnist-cnn"
    newest = max((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    card = ModelCard.read(newest)
    examples = [example.instance for example in card.examples]
    return json.dumps({"instances": [examples[i % len(examples)] for i in range(rows)]}).encode()


def client(
    port: int, body: bytes, until: float, out: list[tuple[float, int]], stop: threading.Event
) -> None:
    """Post `body` in a loop until `until`; (latency s, status) per request (0: no answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < until and not stop.is_set():
        started = time.perf_counter()
        try:
            connection.request("POST", "/v1/models/mnist-cnn:predict", body, headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 0
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        out.append((time.perf_counter() - started, status))
        if status == 503:
            time.sleep(0.05)  # a polite client backs off a little
    connection.close()


def scenario(port: int, clients: dict[str, int], seconds: float) -> dict[str, Any]:
    bodies = {rows: body_of(rows) for rows in set(clients.values())}
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in clients}
    stop = threading.Event()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(port, bodies[rows], until, results[name], stop))
        for name, rows in clients.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    table = {}
    for name, rows in clients.items():
        latencies = [latency * 1000 for latency, status in results[name] if status == 200]
        statuses: dict[int, int] = {}
        for _, status in results[name]:
            statuses[status] = statuses.get(status, 0) + 1
        table[name] = {
            "rows": rows,
            "requests": len(results[name]),
            "errors": sum(n for status, n in statuses.items() if status != 200),
            "statuses": statuses,
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "rows_per_s": round(rows * statuses.get(200, 0) / seconds, 1),
        }
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per scenario")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        _, port = start_ours(stack, args.out / "fairness-server.log", SYNERGY_LOG_REQUESTS="false")
        scenario(port, {"warm-up": 64}, 2)
        first = scenario(port, {"bulk-1": 1000, "bulk-2": 1000, "single": 1}, args.seconds)
        second = scenario(port, {"bulk-a": 256, "bulk-b": 256}, args.seconds)
    print("| scenario | client | rows/request | requests | errors | p50 ms | p99 ms | rows/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, table in (("2x1000 + 1x1", first), ("2x256", second)):
        for name, row in table.items():
            print(
                f"| {label} | {name} | {row['rows']} | {row['requests']} | {row['errors']} "
                f"| {row['p50_ms']} | {row['p99_ms']} | {row['rows_per_s']} |"
            )
    checks = [
        ("2x1000 + 1x1: 0 errors for everyone", all(r["errors"] == 0 for r in first.values())),
        ("2x1000 + 1x1: single-row p99 <= 100 ms", first["single"]["p99_ms"] <= 100),
        ("2x256: 0 errors", all(r["errors"] == 0 for r in second.values())),
    ]
    return report({"bulk_and_single": first, "two_256": second}, checks, args.out / "fairness.json")


if __name__ == "__main__":
    sys.exit(main())
