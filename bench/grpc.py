"""REST JSON vs REST binary vs gRPC, same server, same rows, alternating rounds.

    python bench/grpc.py [--models mnist-cnn,iris-knn] [--seconds 5] [--rounds 2]

For each model, one server (`python -m app`, defaults, the committed models) and three ways
to send the same rows to it: V2 REST with a JSON body, V2 REST with Triton's binary tensor
extension (binary in and out), and gRPC `ModelInfer` with raw tensors (as tritonclient sends
them). The load generator is h2load (nghttp2-client, C) for all three, so the client is not
the bottleneck and the three are driven alike: HTTP/1.1 keep-alive connections for REST
(`--h1`, one request at a time per connection, as wrk and most REST clients do), HTTP/2 for
gRPC with the same number of calls in flight spread over a few connections (16 streams per
connection, as a gRPC channel multiplexes), the request body framed as gRPC frames it
(1-byte flag, 4-byte big-endian length, the message).

Loads: single-instance requests at concurrency 1, 16 and 64, and bulk requests of 256 rows
at concurrency 2. Per run: answered requests/s and rows/s (refusals excluded), p99 latency
(from h2load's per-request log), and refusals (REST: non-200; gRPC: calls the server counted
with another code than OK, from its Prometheus metrics, since a gRPC error is an HTTP 200
with a grpc-status trailer; CANCELLED is not counted: h2load resets the streams in flight
when its time is up). Protocols alternate within each round (rotated order), so all three share the
machine's drift. The compute limit is the model's in-process throughput in batches of the
server's max_batch_size (64; featurisation + forward pass, no server), for the bulk rows/s
goal (>= 0.8 of it).

Needs h2load: scripts/ensure-test-tools.sh h2load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import MODELS, ROOT, percentile, report, start_ours

PROTOCOLS = ("rest-json", "rest-binary", "grpc")
# (label, rows per request, concurrency)
# Bulk at 2: the batcher's admission lets two or three bulk requests share a model and
# refuses more (503/UNAVAILABLE), which would measure refusals, not throughput.
LOADS = (("c1", 1, 1), ("c16", 1, 16), ("c64", 1, 64), ("bulk256", 256, 2))
STREAMS_PER_CONNECTION = 16
SERVER_BATCH_ROWS = 64  # SYNERGY_MAX_BATCH_SIZE's default: a bulk request runs in such batches


def _rows(model: str, count: int) -> tuple[str, str, np.ndarray]:
    """(input name, datatype, `count` rows of real held-out examples) of a model."""
    from app.schemas.card import ModelCard

    card = ModelCard.read(ROOT / "models" / model / "2")
    instances = [example.instance for example in card.examples]
    chosen = [instances[i % len(instances)] for i in range(count)]
    if card.input.kind == "tabular":
        names = [f.name for f in card.input.features]
        values = [[i[n] for n in names] if isinstance(i, dict) else i for i in chosen]
        return "features", "FP32", np.asarray(values, dtype=np.float32)
    if card.input.kind == "image":
        return "image", "UINT8", np.asarray(chosen, dtype=np.uint8)
    return "text", "BYTES", np.array([t.encode() for t in chosen], dtype=object)


def _raw(datatype: str, array: np.ndarray) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(v)) + v for v in array.ravel().tolist())
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def bodies(model: str, rows: int, folder: Path) -> dict[str, tuple[Path, list[str], str]]:
    """Per protocol: (body file, extra headers, path) for `rows` rows of `model`."""
    from app.rpc.generated import grpc_service_pb2 as pb

    name, datatype, array = _rows(model, rows)
    shape = list(array.shape)
    data = (
        [v.decode() for v in array.ravel().tolist()]
        if datatype == "BYTES"
        else array.ravel().tolist()
    )
    tensor = {"name": name, "datatype": datatype, "shape": shape}
    json_body = json.dumps({"inputs": [{**tensor, "data": data}]}).encode()
    raw = _raw(datatype, array)
    header = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    message = request.SerializeToString()
    framed = b"\0" + struct.pack(">I", len(message)) + message
    path = f"/v2/models/{model}/infer"
    out = {}
    for protocol, body, headers, target in (
        ("rest-json", json_body, ["content-type: application/json"], path),
        (
            "rest-binary",
            header + raw,
            [
                "content-type: application/octet-stream",
                f"inference-header-content-length: {len(header)}",
            ],
            path,
        ),
        (
            "grpc",
            framed,
            ["content-type: application/grpc", "te: trailers"],
            "/inference.GRPCInferenceService/ModelInfer",
        ),
    ):
        file = folder / f"{model}-{rows}-{protocol}.bin"
        file.write_bytes(body)
        out[protocol] = (file, headers, target)
    return out


def run_h2load(
    protocol: str,
    address: str,
    body: tuple[Path, list[str], str],
    concurrency: int,
    seconds: float,
    log: Path,
) -> dict[str, float]:
    """One bounded h2load run: requests, duration, p99 (ms), non-200 responses."""
    file, headers, target = body
    if protocol == "grpc":
        connections = max(1, concurrency // STREAMS_PER_CONNECTION)
        shape = ["-c", str(connections), "-m", str(concurrency // connections)]
    else:
        shape = ["--h1", "-c", str(concurrency), "-m", "1"]
    command = [
        "h2load",
        *shape,
        "-t",
        "1",
        "-D",
        f"{seconds:g}",
        "--warm-up-time",
        "1",
        "-d",
        str(file),
        "--log-file",
        str(log),
        *(part for h in headers for part in ("-H", h)),
        f"http://{address}{target}",
    ]
    log.unlink(missing_ok=True)  # h2load appends
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"h2load failed: {done.stderr or done.stdout}")
    # Throughput and status codes from h2load's summary (the measured period, after the
    # warm-up); p99 from its per-request log (start, status, microseconds).
    finished = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", done.stdout)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", done.stdout)
    failed = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", done.stdout)
    if finished is None or codes is None or failed is None:
        raise RuntimeError(f"unexpected h2load output:\n{done.stdout}")
    latencies_ms = [
        int(parts[2]) / 1000.0
        for parts in (line.split("\t") for line in log.read_text().splitlines())
        if len(parts) >= 3
    ]
    rps = float(finished.group(2))
    return {
        "requests": rps * seconds,
        "seconds": seconds,
        "p99_ms": percentile(latencies_ms, 99),
        "non_200": float(
            sum(int(codes.group(i)) for i in (2, 3, 4)) + sum(int(x) for x in failed.groups())
        ),
    }


def grpc_errors(http_port: int) -> float:
    """gRPC calls the server answered with another code than OK (its metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("synergy_requests_total{")
            and 'protocol="grpc"' in line
            and 'status="200"' not in line
            and 'status="499"' not in line  # CANCELLED: h2load's streams cut at the end
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def compute_limit(model: str, batch: int) -> float:
    """Rows/s of the model's featurisation + forward pass at batches of `batch` rows (the
    server's max_batch_size), in this process, through the server's own adapter and runtime:
    the most a server could do with this many rows per model call."""
    from app.kinds import make_adapter
    from app.runtimes import load_model
    from app.runtimes.keras import configure_backend
    from app.schemas.card import ModelCard

    configure_backend(len(os.sched_getaffinity(0)))
    folder = ROOT / "models" / model / "2"
    card = ModelCard.read(folder)
    runtime = load_model(card, folder, buckets=(batch,))
    adapter = make_adapter(card, folder, max_image_pixels=10**8)
    _, datatype, array = _rows(model, batch)
    prepared = adapter.tensor_rows(datatype, array, None)
    runtime.predict(adapter.featurize(prepared))  # compile / warm
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 2.0:
        runtime.predict(adapter.featurize(prepared))
        calls += 1
    return batch * calls / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--goal", type=float, default=1.2, help="gRPC/REST JSON at c64, mnist-cnn")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-grpc-"))
    result: dict[str, Any] = {}
    print("| model | load | round | protocol | req/s | rows/s | p99 ms | refused |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for model in args.models.split(","):
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        with ExitStack() as stack:
            grpc_port = str(_free_port())
            _, port = start_ours(
                stack,
                args.out / f"grpc-{model}.log",
                SYNERGY_GRPC_PORT=grpc_port,
                SYNERGY_STORE_DIR=tempfile.mkdtemp(prefix="bench-grpc-store-"),
            )
            addresses = {"grpc": f"127.0.0.1:{grpc_port}"}
            for protocol in ("rest-json", "rest-binary"):
                addresses[protocol] = f"127.0.0.1:{port}"
            load_bodies = {rows: bodies(model, rows, work) for _, rows, _ in LOADS}
            empty_port = _free_port()
            empty = subprocess.Popen(
                # As a module from the root: run as a file, bench/grpc.py would shadow grpc.
                [sys.executable, "-m", "bench.grpc_empty", str(empty_port)],
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            stack.callback(empty.kill)
            assert empty.stdout is not None
            empty.stdout.readline()  # "ready"
            for protocol in PROTOCOLS:  # warm-up: each path once
                run_h2load(
                    protocol, addresses[protocol], load_bodies[1][protocol], 4, 1, work / "w"
                )
            for round_ in range(args.rounds):
                # grpc.aio's own ceiling at c64 with the same body (bench/grpc_empty.py).
                ceiling = run_h2load(
                    "grpc",
                    f"127.0.0.1:{empty_port}",
                    load_bodies[1]["grpc"],
                    64,
                    args.seconds,
                    work / "log.tsv",
                )
                ceiling["errors"] = ceiling["non_200"]
                runs.setdefault(("c64", "grpc-empty"), []).append({**ceiling, "rows": 1})
                print(
                    f"| {model} | c64 | {round_ + 1} | grpc.aio empty | "
                    f"{ceiling['requests'] / ceiling['seconds']:,.0f} | | "
                    f"{ceiling['p99_ms']:.1f} | |",
                    flush=True,
                )
                for label, rows, concurrency in LOADS:
                    shift = round_ % len(PROTOCOLS)
                    for protocol in PROTOCOLS[shift:] + PROTOCOLS[:shift]:
                        errors_before = grpc_errors(port) if protocol == "grpc" else 0.0
                        run = run_h2load(
                            protocol,
                            addresses[protocol],
                            load_bodies[rows][protocol],
                            concurrency,
                            args.seconds,
                            work / "log.tsv",
                        )
                        run["errors"] = (
                            grpc_errors(port) - errors_before
                            if protocol == "grpc"
                            else run["non_200"]
                        )
                        run["rows"] = rows
                        runs.setdefault((label, protocol), []).append(run)
                        run["requests"] -= run["errors"]  # answered, not refused
                        rps = run["requests"] / run["seconds"]
                        print(
                            f"| {model} | {label} | {round_ + 1} | {protocol} | {rps:,.0f} | "
                            f"{rps * rows:,.0f} | {run['p99_ms']:.1f} | {run['errors']:.0f} |",
                            flush=True,
                        )
        limit = compute_limit(model, SERVER_BATCH_ROWS)
        result[model] = {"compute_limit_rows_s": limit}
        for (label, protocol), rs in runs.items():
            requests = sum(r["requests"] for r in rs)
            seconds = sum(r["seconds"] for r in rs)
            result[model][f"{label}/{protocol}"] = {
                "rps": requests / seconds,
                "rows_s": requests * rs[0]["rows"] / seconds,
                "p99_ms": max(r["p99_ms"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
            }
    print(
        "\n| model | load | REST JSON req/s | REST binary req/s | gRPC req/s | gRPC/JSON "
        "| rows/s JSON / binary / gRPC | p99 ms JSON / binary / gRPC | refused |"
    )
    print("|---|---|---:|---:|---:|---:|---|---|---:|")
    for model, row in result.items():
        for label, _, _ in LOADS:
            cells = [row[f"{label}/{p}"] for p in PROTOCOLS]
            print(
                f"| {model} | {label} | "
                + " | ".join(f"{c['rps']:,.0f}" for c in cells)
                + f" | {cells[2]['rps'] / cells[0]['rps']:.2f} | "
                + " / ".join(f"{c['rows_s']:,.0f}" for c in cells)
                + " | "
                + " / ".join(f"{c['p99_ms']:.1f}" for c in cells)
                + f" | {sum(c['errors'] for c in cells):.0f} |"
            )
        print(
            f"| {model} | compute limit (in-process, batches of {SERVER_BATCH_ROWS}) | | | | | "
            f"{row['compute_limit_rows_s']:,.0f} rows/s | | |"
        )
        empty = row["c64/grpc-empty"]
        print(
            f"| {model} | c64, grpc.aio empty handler (the library's own ceiling) | | | "
            f"{empty['rps']:,.0f} | | | {empty['p99_ms']:.1f} | |"
        )
    checks = []
    if "mnist-cnn" in result:
        row = result["mnist-cnn"]
        ratio = row["c64/grpc"]["rps"] / row["c64/rest-json"]["rps"]
        checks.append(
            (f"mnist-cnn c64: gRPC {ratio:.2f}x REST JSON >= {args.goal:g}x", ratio >= args.goal)
        )
    for model, row in result.items():
        share = row["bulk256/grpc"]["rows_s"] / row["compute_limit_rows_s"]
        checks.append(
            (f"{model} bulk gRPC rows/s {share:.2f} of the compute limit >= 0.8", share >= 0.8)
        )
        errors = sum(v["errors"] for k, v in row.items() if isinstance(v, dict))
        checks.append((f"{model}: nothing refused", errors == 0))
    return report(result, checks, args.out / "grpc.json")


def _free_port() -> int:
    from bench.common import free_port

    return free_port()


if __name__ == "__main__":
    sys.exit(main())
