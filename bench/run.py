"""`make bench`: the service under load, next to the naive server and the no-model ceiling.

Starts three real server processes on loopback (ours as `python -m app`, the ceiling and the
tutorial-style naive server under uvicorn), drives each from a separate process with wrk using
real request bodies (the held-out examples of each model card: a real iris flower, a real
MNIST test digit as a 28x28 array, a real review), and prints markdown tables: requests/s,
p50, p99 and errors per model and concurrency, our throughput as ratios to both references,
and the in-process compute limit of each model. Everything stays on 127.0.0.1 and every load
run is bounded by its duration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    MODELS,
    ROOT,
    free_port,
    request_bodies,
    run_wrk,
    start,
    wait_ready,
)

# The goals, checked at concurrency 64.
GOALS: dict[str, dict[str, float]] = {
    "mnist-cnn": {"x_naive": 100, "x_ceiling": 0.5, "p99_ms": 100},
    "imdb-sentiment": {"rps": 1500, "x_ceiling": 0.4, "p99_ms": 100},
    "iris-knn": {"x_ceiling": 0.6},
    "binary-mlp": {"x_ceiling": 0.6},
}
IDLE_P50_GOAL_MS = 3.0


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs as one: total requests over total time; median p50; worst p99/max."""
    seconds = [r["requests"] / r["rps"] for r in rounds]
    p50s = sorted(r["p50_ms"] for r in rounds)
    return {
        "concurrency": rounds[0]["concurrency"],
        "rps": sum(r["requests"] for r in rounds) / sum(seconds),
        "p50_ms": p50s[len(p50s) // 2],
        "p90_ms": max(r["p90_ms"] for r in rounds),
        "p99_ms": max(r["p99_ms"] for r in rounds),
        "max_ms": max(r["max_ms"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "rounds": len(rounds),
    }


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for name in ("keras", "jax", "tensorflow-cpu", "scikit-learn", "fastapi", "uvicorn"):
        try:
            from importlib import metadata

            versions[name] = metadata.version(name)
        except Exception:
            continue
    return {
        "cpu": cpu,
        "cores": str(len(os.sched_getaffinity(0))),
        "memory": f"{memory_gb:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "wrk": subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0]
        if shutil.which("wrk")
        else "missing",
        "keras_backend": os.environ.get("KERAS_BACKEND", "jax (server default)"),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def report(results: dict[str, Any]) -> str:
    lines = [f"# Synergy Serve benchmark, {results['date']}", ""]
    m = results["machine"]
    lines += [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; {m['os']}; Python "
        f"{m['python']}; {m['wrk']}; Keras backend {m['keras_backend']}; {m['versions']}.",
        f"Each run: {results['seconds']:g} s of single-instance requests, wrk on the same "
        "machine (it shares the cores); at concurrency 64 the ceiling and ours alternate "
        "in rounds.",
        "",
    ]
    lines += [
        "| model | c | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model, runs in results["ours"].items():
        for run in runs:
            lines.append(
                f"| {model} | {run['concurrency']} | {fmt(run['rps'])} | "
                f"{fmt(run['p50_ms'], 2)} | {fmt(run['p99_ms'], 2)} | {run['errors']} |"
            )
    lines += [
        "",
        "References at concurrency 64 (same machine, same bodies):",
        "",
        "| model | ours req/s | ceiling req/s | naive req/s | x naive | x ceiling | "
        "naive p99 ms | naive errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in results["ours"]:
        ours = next(r for r in results["ours"][model] if r["concurrency"] == 64)
        ceiling = results["ceiling"].get(model)
        naive = results["naive"].get(model)
        x_ceiling = ours["rps"] / ceiling["rps"] if ceiling else float("nan")
        x_naive = ours["rps"] / naive["rps"] if naive and naive["rps"] else float("nan")
        lines.append(
            f"| {model} | {fmt(ours['rps'])} | {fmt(ceiling['rps']) if ceiling else '-'} | "
            f"{fmt(naive['rps']) if naive else '-'} | {fmt(x_naive, 0)}x | {x_ceiling:.2f} | "
            f"{fmt(naive['p99_ms'], 0) if naive else '-'} | {naive['errors'] if naive else '-'} |"
        )
    if results["compute"]:
        lines += [
            "",
            "In-process compute limit (featurise + forward pass, items/s):",
            "",
            "| model | batch 1 | batch 32 | batch 128 |",
            "|---|---:|---:|---:|",
        ]
        for model, by_batch in results["compute"].items():
            lines.append(
                f"| {model} | " + " | ".join(fmt(by_batch[str(b)], 0) for b in (1, 32, 128)) + " |"
            )
    lines += ["", "Goals (concurrency 64 unless noted):", ""]
    for check, ok in goal_checks(results):
        lines.append(f"- [{'x' if ok else ' '}] {check}")
    return "\n".join(lines) + "\n"


def goal_checks(results: dict[str, Any]) -> list[tuple[str, bool]]:
    checks = []
    for model, goal in GOALS.items():
        if model not in results["ours"]:
            continue
        runs = {r["concurrency"]: r for r in results["ours"][model]}
        ours = runs.get(64)
        if ours is None:
            continue
        ceiling = results["ceiling"].get(model)
        naive = results["naive"].get(model)
        if "x_naive" in goal and naive:
            ratio = ours["rps"] / max(naive["rps"], 1e-9)
            checks.append(
                (
                    f"{model}: {ratio:.0f}x the naive server (goal >= {goal['x_naive']:g}x)",
                    ratio >= goal["x_naive"],
                )
            )
        if "x_ceiling" in goal and ceiling:
            ratio = ours["rps"] / ceiling["rps"]
            checks.append(
                (
                    f"{model}: {ratio:.2f} of the ceiling (goal >= {goal['x_ceiling']})",
                    ratio >= goal["x_ceiling"],
                )
            )
        if "rps" in goal:
            checks.append(
                (
                    f"{model}: {ours['rps']:.0f} requests/s (goal >= {goal['rps']:g})",
                    ours["rps"] >= goal["rps"],
                )
            )
        if "p99_ms" in goal:
            checks.append(
                (
                    f"{model}: p99 {ours['p99_ms']:.1f} ms (goal <= {goal['p99_ms']:g})",
                    ours["p99_ms"] <= goal["p99_ms"],
                )
            )
        if model in ("mnist-cnn",):
            checks.append((f"{model}: {ours['errors']} errors (goal 0)", ours["errors"] == 0))
    for model, runs in results["ours"].items():
        idle = next((r for r in runs if r["concurrency"] == 1), None)
        if idle:
            checks.append(
                (
                    f"{model}: p50 {idle['p50_ms']:.2f} ms at concurrency 1 (goal <= "
                    f"{IDLE_P50_GOAL_MS:g})",
                    idle["p50_ms"] <= IDLE_P50_GOAL_MS,
                )
            )
    return checks


def compute_limit(models_dir: Path) -> dict[str, Any]:
    """Items/s of each raw model in-process, run in its own process (no server running)."""
    output = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compute.py"), str(models_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per load run (default 30)")
    parser.add_argument("--naive-seconds", type=float, default=15.0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating ceiling/ours rounds at concurrency 64 (default 3)",
    )
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("error: wrk not found; install it (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    models = [m for m in args.models.split(",") if m]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "seconds": args.seconds,
        "ours": {},
        "ceiling": {},
        "naive": {},
        "compute": {},
    }
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    bodies = request_bodies(args.models_dir, work)
    ports = {"ours": free_port(), "ceiling": free_port(), "naive": free_port()}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SYNERGY_MODELS_DIR": str(args.models_dir),
        "SYNERGY_PORT": str(ports["ours"]),
        "SYNERGY_GRPC_PORT": str(free_port()),
        "NAIVE_MODELS_DIR": str(args.models_dir),
    }
    uvicorn = [
        sys.executable,
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with ExitStack() as stack:
        servers = {
            "ours": start(stack, [sys.executable, "-m", "app"], env, args.out / "ours.log"),
            "ceiling": start(
                stack,
                [*uvicorn, "--port", str(ports["ceiling"]), "bench.ceiling_app:app"],
                env,
                args.out / "ceiling.log",
            ),
        }
        if not args.skip_naive:
            servers["naive"] = start(
                stack,
                [*uvicorn, "--port", str(ports["naive"]), "bench.naive_app:app"],
                env,
                args.out / "naive.log",
            )
        for name, process in servers.items():
            wait_ready(ports[name], process)
            print(f"{name} server ready on port {ports[name]}", file=sys.stderr)
        for model in models:
            body = bodies[model]
            run_wrk(ports["ours"], model, body, 64, 3)  # warm-up
            # The machine's speed drifts by tens of percent over minutes (a shared VM): the
            # ceiling and ours alternate in short rounds so the drift hits both alike.
            ceiling_rounds, ours_rounds = [], []
            for _ in range(args.rounds):
                ceiling_rounds.append(
                    run_wrk(ports["ceiling"], model, body, 64, args.seconds / args.rounds)
                )
                ours_rounds.append(
                    run_wrk(ports["ours"], model, body, 64, args.seconds / args.rounds)
                )
            results["ceiling"][model] = combine(ceiling_rounds)
            runs = []
            for concurrency in concurrencies:
                run = (
                    combine(ours_rounds)
                    if concurrency == 64
                    else run_wrk(ports["ours"], model, body, concurrency, args.seconds)
                )
                runs.append(run)
                print(
                    f"{model} c{concurrency}: {run['rps']:.0f} req/s p50 {run['p50_ms']:.2f} "
                    f"ms p99 {run['p99_ms']:.2f} ms errors {run['errors']}",
                    file=sys.stderr,
                )
            results["ours"][model] = runs
            if not args.skip_naive:
                results["naive"][model] = run_wrk(
                    ports["naive"], model, body, 64, args.naive_seconds
                )
                print(f"{model} naive: {results['naive'][model]['rps']:.1f} req/s", file=sys.stderr)
    results["compute"] = {m: v for m, v in compute_limit(args.models_dir).items() if m in models}
    text = report(results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (args.out / f"results-{stamp}.md").write_text(text)
    (args.out / f"results-{stamp}.json").write_text(json.dumps(results, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
