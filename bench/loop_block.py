"""Is the event loop free while large bodies arrive? (issue 13)

Starts `python -m app` (defaults, committed models) and, for --seconds per case, has 12
clients (threads, each its own keep-alive connection) post large bodies while a prober asks
`/health/live` every 20 ms on a fresh connection, as a kubelet does. Cases:
1. nothing (the probe alone), for reference;
2. a few-KB gzip V2 body that inflates to 8 MB of JSON (4 million zeros), the 12 clients
   together sending 50 KB/s (the issue's traffic);
3. the same, each client as fast as it can;
4. a 7 MB plain :predict body: 1,000 MNIST-shaped grids of 4-decimal grey levels (valid, so
   it is parsed in full and predicted), the 12 clients together sending 2 a second (2,000
   rows/s, well within the model's capacity);
5. the same, each client as fast as it can (far more than the model can compute: most get
   503).
Prints health p50/p99/max and what the clients got. Goal: health p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import random
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, percentile, report, start_ours


def zeros_body() -> tuple[bytes, dict[str, str]]:
    head = b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1000, 28, 28], "data": ['
    body = gzip.compress(head + b"0," * 3_999_999 + b"0]}]}", 9)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return body, headers


def grids_body() -> bytes:
    rng = random.Random(13)
    grids = [[[round(rng.random() * 255, 4) for _ in range(28)] for _ in range(28)]]
    body = json.dumps({"instances": grids * 1000}, separators=(",", ":")).encode()
    return body


def client(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    stop: threading.Event,
    out: list[int],
    interval_s: float,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    stop.wait(random.random() * interval_s)  # paced clients spread out, not in lockstep
    while not stop.wait(interval_s):
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            out.append(response.status)
        except OSError:
            out.append(0)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.close()


def probe(port: int, stop: threading.Event, latencies_ms: list[float]) -> None:
    while not stop.wait(0.02):
        started = time.perf_counter()
        try:
            url = f"http://127.0.0.1:{port}/health/live"
            with urllib.request.urlopen(url, timeout=10) as answer:
                answer.read()
            latencies_ms.append((time.perf_counter() - started) * 1000)
        except OSError:
            latencies_ms.append(float("inf"))


def case(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    clients: int,
    seconds: float,
    bytes_per_s: float | None = None,
) -> dict[str, Any]:
    """`clients` posting `body` for `seconds` (together at most bytes_per_s, if given)."""
    interval_s = clients * len(body) / bytes_per_s if bytes_per_s else 0.0
    stop = threading.Event()
    statuses: list[int] = []
    health: list[float] = []
    threads = [
        threading.Thread(
            target=client, args=(port, path, body, headers, stop, statuses, interval_s)
        )
        for _ in range(clients)
    ]
    prober = threading.Thread(target=probe, args=(port, stop, health))
    for thread in [*threads, prober]:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in [*threads, prober]:
        thread.join(120)
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return {
        "body_bytes": len(body),
        "requests": len(statuses),
        "statuses": counts,
        "health_probes": len(health),
        "health_p50_ms": round(percentile(health, 50), 1),
        "health_p99_ms": round(percentile(health, 99), 1),
        "health_max_ms": round(max(health), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per case")
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    zeros, zeros_headers = zeros_body()
    grids = grids_body()
    results: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        _, port = start_ours(
            stack, args.out / "loop-block-server.log", SYNERGY_LOG_REQUESTS="false"
        )
        results["none (probe alone)"] = case(port, "/", b"", {}, 0, min(args.seconds, 5))
        v2 = "/v2/models/mnist-cnn/infer"
        name = f"{len(zeros) // 1000} KB gzip V2 -> 8 MB JSON of zeros"
        results[f"{name}, 50 KB/s in all"] = case(
            port, v2, zeros, zeros_headers, args.clients, args.seconds, 50_000
        )
        results[f"{name}, as fast as they can"] = case(
            port, v2, zeros, zeros_headers, args.clients, args.seconds
        )
        name = f"{len(grids) / 1e6:.1f} MB :predict, 1,000 grids"
        results[f"{name}, 2 a second in all"] = case(
            port,
            "/v1/models/mnist-cnn:predict",
            grids,
            {"Content-Type": "application/json"},
            args.clients,
            args.seconds,
            2 * len(grids),
        )
        results[f"{name}, as fast as they can"] = case(
            port,
            "/v1/models/mnist-cnn:predict",
            grids,
            {"Content-Type": "application/json"},
            args.clients,
            args.seconds,
        )
    print(f"{args.clients} clients, {args.seconds:g} s per case")
    print("| body | requests | statuses | health probes | p50 ms | p99 ms | max ms |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, row in results.items():
        print(
            f"| {name} | {row['requests']} | {row['statuses']} | {row['health_probes']} | "
            f"{row['health_p50_ms']} | {row['health_p99_ms']} | {row['health_max_ms']} |"
        )
    checks = [
        (f"/health/live p99 <= 50 ms under {name}", row["health_p99_ms"] <= 50)
        for name, row in results.items()
    ]
    return report(results, checks, args.out / "loop_block.json")


if __name__ == "__main__":
    sys.exit(main())
