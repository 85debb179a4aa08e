"""What the benchmarks share: servers as real processes, wrk/hey runs, request bodies, RSS.

All traffic goes to 127.0.0.1 and every run is bounded by its duration.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    """Poll /health/ready until it answers 200 (raises if the process dies or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"server on port {port} not ready after {timeout_s}s")


def start(
    stack: ExitStack, command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """Start a server process (from `cwd`, whose `app` it runs); the stack stops it (SIGTERM,
    then SIGKILL) on exit."""
    handle = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )

    def stop() -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    stack.callback(stop)
    return process


def start_ours(
    stack: ExitStack,
    log: Path,
    models_dir: Path = ROOT / "models",
    root: Path = ROOT,
    **settings: str,
) -> tuple[subprocess.Popen[bytes], int]:
    """`python -m app` of the checkout at `root` on a free port, ready; (process, port)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "SYNERGY_MODELS_DIR": str(models_dir),
        "SYNERGY_PORT": str(port),
        "SYNERGY_GRPC_PORT": str(free_port()),
        **settings,
    }
    process = start(stack, [sys.executable, "-m", "app"], env, log, cwd=root)
    wait_ready(port, process)
    return process, port


def run_wrk(port: int, model: str, body: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    """One bounded wrk run; requests/s, latency percentiles (ms) and errors."""
    threads = 1 if concurrency < 4 else 2
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds only
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "post.lua"),
            f"http://127.0.0.1:{port}/v1/models/{model}:predict",
        ],
        env={**os.environ, "BODY": str(body)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = raw["non_2xx"] + raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "concurrency": concurrency,
        "rps": raw["requests"] / raw["seconds"],
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "errors": errors,
    }


def run_hey(
    port: int, model: str, body: Path, *, workers: int, rate_per_worker: float, seconds: float
) -> list[tuple[float, int]]:
    """A rate-limited hey run (workers x rate = offered requests/s, near open loop);
    returns (latency seconds, status) per request, status 0 for a transport error."""
    command = (
        f"ulimit -n 65536; exec hey -z {seconds:g}s -c {workers} -q {rate_per_worker:g} "
        f"-t 20 -m POST -T application/json -D {body} -o csv "
        f"http://127.0.0.1:{port}/v1/models/{model}:predict"
    )
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=seconds + 120, check=True
    )
    rows = []
    for row in csv.DictReader(io.StringIO(result.stdout)):
        rows.append((float(row["response-time"]), int(row["status-code"] or 0)))
    return rows


def request_bodies(models_dir: Path, folder: Path) -> dict[str, Path]:
    """A real held-out example of each model (from its card) as a one-instance body."""
    sys.path.insert(0, str(ROOT))
    from app.schemas.card import ModelCard

    bodies = {}
    for model in MODELS:
        card = ModelCard.read(
            max(
                (p for p in (models_dir / model).iterdir() if p.name.isdigit()),
                key=lambda p: int(p.name),
            )
        )
        path = folder / f"{model}.json"
        path.write_text(json.dumps({"instances": [card.examples[0].instance]}))
        bodies[model] = path
    return bodies


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """Samples a process's RSS every interval_s in a background thread while in the `with`
    block: `samples` holds (seconds since the start, MB)."""

    def __init__(self, pid: int, interval_s: float) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval_s):
            self.samples.append((time.monotonic() - started, rss_mb(self.pid)))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def report(result: dict[str, Any], checks: list[tuple[str, bool]], path: Path) -> int:
    """Print the result and its checklist, save both as JSON; the exit status (0: all pass)."""
    print(json.dumps(result, indent=2))
    for name, ok in checks:
        print(f"- [{'x' if ok else ' '}] {name}")
    path.write_text(json.dumps({**result, "checks": checks}, indent=2))
    return 0 if all(ok for _, ok in checks) else 1


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def access_log(log: Path) -> list[dict[str, Any]]:
    """The server's JSON access lines."""
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"synergy.access"' in line:
            lines.append(json.loads(line))
    return lines
