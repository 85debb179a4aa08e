"""CPU microseconds per request by stage, from a py-spy profile of a server under load.

    python bench/stage_profile.py --models all                      # this checkout
    python bench/stage_profile.py --baseline bae7060 --models all   # the release before

For each model: starts the server (`python -m app`, defaults, the checkout's own models),
warms it up, runs wrk at concurrency 64 and meanwhile records every thread of the server with
py-spy (`--rate` samples per second, of the thread holding the GIL: on a busy machine, threads
that wait for a core or for the GIL would otherwise be sampled too). Each sample is put in one
stage by the innermost frame that names one (see STAGES), and a stage's samples over the
rate are its share of the server's CPU time in the window (user + system, every thread, from
/proc), which divided by the requests answered meanwhile gives CPU microseconds per request
(on a busy machine, samples also catch threads that wait for a core, so the kernel's count
is the total, the samples only the split):

- HTTP parse: uvicorn/httptools reading requests, our connection limits;
- HTTP write: writing responses to the socket (uvicorn's `send`);
- event loop: uvloop's own work (socket I/O, callbacks) that py-spy sees as the loop's frame;
- middleware: ASGI layers and routing up to the endpoint (ours and the framework's);
- decode: body read, JSON parse and validation, rows (`to_row`);
- routing: choosing the model version (labels, traffic split, shadow);
- batch hand-off: queueing rows, waking the worker, handing results back;
- model: the model's forward pass and featurisation, on its worker;
- encode: the response body;
- bookkeeping: metrics, access log, serving stats, the prediction store and monitor.

Samples of the GIL changing hands show in the frame that waited. py-spy needs ptrace rights
(root, or `kernel.yama.ptrace_scope=0`).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab import _children, _extract, cpu_s
from bench.common import MODELS, ROOT, request_bodies, run_wrk, start_ours

# (stage, substrings of a frame's "function (file:line)"), innermost frame first wins.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("model", ("Model.predict (", ".featurize", "featurize_batch", "run_batch")),
    (
        "bookkeeping",
        (
            "ObservabilityMiddleware._record",
            "AccessLog",
            "Monitor.record",
            "Writer.",
            "_Pending",
            "prometheus_client",
            "ServingStats",
            "record_request",
            "batch_observer",
            "rows_started",
            "batch_done",
            "PredictionEvent",
            "monitoring/",
        ),
    ),
    (
        "encode",
        (
            "V1Protocol.encode",
            "V2Protocol.encode",
            "json_response",
            "jsonutil",
            "Response.__init__",
            "encode_response",
        ),
    ),
    (
        "decode",
        (
            "V1Protocol.decode",
            "V2Protocol.decode",
            "V2Protocol._decode",
            "read_body",
            "parse_instances",
            "plain_rows",
            "to_row",
            "infer_response",
        ),
    ),
    (
        "routing",
        (
            "InferenceCore.select",
            "RequestContext.serve",
            "registry.py",
            "routing.py",
            "versions.py",
            "route_headers",
        ),
    ),
    ("batch hand-off", ("batching/", "InferenceCore.infer")),
    ("HTTP write", ("RequestResponseCycle.send", "_CorkedCycle.send", "_FirstBodyWrite")),
    (
        "HTTP parse",
        (
            "data_received",
            "_feed",
            "on_url",
            "on_header",
            "on_headers_complete",
            "on_message_begin",
            "on_message_complete",
            "on_body",
            "connection_made",
            "connection_lost",
            "_arm",
            "_disarm",
            "on_response_complete",
            "_unset_keepalive",
            "httptools_impl",
            "app/server.py",
        ),
    ),
    (
        "middleware",
        (
            "Middleware",
            "middleware",
            "FastAPI.__call__",
            "Starlette.__call__",
            "ServingApp",
            "_Dispatch",
            "PredictFastPath",
            "PredictEndpoint",
            "InferEndpoint",
            "Response.__call__",
            "routing.py",
            "run_asgi",
            "V1Protocol.predict",
            "V2Protocol.infer",
        ),
    ),
    ("event loop", ("Runner.run", "base_events", "events.py")),
]


def stage_of(frames: list[str]) -> str:
    """The stage of one sample (frames root first)."""
    for frame in reversed(frames):
        for stage, needles in STAGES:
            if any(needle in frame for needle in needles):
                return stage
    return "other"


def _thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds so far of the server's event-loop thread (the main thread: uvicorn runs
    the loop there), of its other threads (the models' workers, XLA's and BLAS's pools, the
    decoding and store threads) and of its child processes (the prediction store's writer)."""
    tick = os.sysconf("SC_CLK_TCK")
    loop = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        used = (int(fields[11]) + int(fields[12])) / tick
        if task.name == str(pid):
            loop += used
        else:
            other += used
    children = sum(cpu_s(child, tree=True) for child in _children(pid))
    return {"event-loop thread": loop, "other threads": other, "child processes": children}


def profile(
    port: int,
    pid: int,
    model: str,
    body: Path,
    seconds: float,
    rate: int,
    out: Path,
    gil: bool = True,
) -> dict[str, Any]:
    """Record the server while wrk loads it; µs of CPU per request by stage."""
    raw = out / f"pyspy-{model}-{port}.txt"
    load: dict[str, Any] = {}
    loader = threading.Thread(
        target=lambda: load.update(run_wrk(port, model, body, 64, seconds + 2)), daemon=True
    )
    loader.start()
    time.sleep(1.0)
    cpu_before, started = cpu_s(pid), time.perf_counter()
    threads_before = _thread_cpu_s(pid)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(round(seconds)),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            *(["--gil"] if gil else []),
            "--output",
            str(raw),
        ],
        capture_output=True,
        check=True,
    )
    cpu, elapsed = cpu_s(pid) - cpu_before, time.perf_counter() - started
    threads_after = _thread_cpu_s(pid)
    loader.join()
    requests = load["rps"] * elapsed
    samples: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples[stage_of(stack.split(";"))] += int(count)
    cpu_us = 1e6 * cpu / requests
    # On a busy machine a sampled thread may be waiting for a core (even holding the GIL):
    # the samples give each stage's share, the kernel's CPU time of the process the total.
    total = sum(samples.values()) or 1
    per_request = {stage: cpu_us * n / total for stage, n in samples.items()}
    return {
        "rps": load["rps"],
        "p99_ms": load["p99_ms"],
        "us_per_request": per_request,
        "cpu_us_per_request": cpu_us,
        # Steadier than the samples' split: the kernel's count per thread group.
        "threads_us_per_request": {
            name: 1e6 * (threads_after[name] - threads_before[name]) / requests
            for name in threads_after
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", default=None, help="a commit to profile instead of this checkout"
    )
    parser.add_argument("--models", default="all")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every running thread, not only the one holding the GIL",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = _extract(args.baseline) if args.baseline else ROOT
    bodies = request_bodies(ROOT / "models", Path(tempfile.mkdtemp()))
    models = MODELS if args.models == "all" else tuple(args.models.split(","))
    stages = [stage for stage, _ in STAGES] + ["other"]
    print("| model | req/s | " + " | ".join(stages) + " | CPU us/req (/proc) |")
    print("|---|---:|" + "---:|" * (len(stages) + 1))
    split: list[tuple[str, dict[str, float]]] = []
    for model in models:
        with ExitStack() as stack:
            process, port = start_ours(
                stack,
                args.out / "stage-profile.log",
                models_dir=root / "models",
                root=root,
                SYNERGY_STORE_DIR=tempfile.mkdtemp(prefix="stage-store-"),
            )
            run_wrk(port, model, bodies[model], 64, 2)  # warm-up
            result = profile(
                port,
                process.pid,
                model,
                bodies[model],
                args.seconds,
                args.rate,
                args.out,
                gil=not args.all_threads,
            )
        costs = result["us_per_request"]
        print(
            f"| {model} | {result['rps']:,.0f} | "
            + " | ".join(f"{costs.get(stage, 0.0):.0f}" for stage in stages)
            + f" | {result['cpu_us_per_request']:.0f} |"
        )
        split.append((model, result["threads_us_per_request"]))
    print("\nCPU us per request by thread (/proc):\n")
    names = list(split[0][1]) if split else []
    print("| model | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for model, threads in split:
        print(f"| {model} | " + " | ".join(f"{threads[n]:.0f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
