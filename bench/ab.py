"""A/B of the hot path: this checkout against another (an older commit), in one window.

    git archive <commit> | tar -x -C /tmp/old && python bench/ab.py --old /tmp/old

Or this checkout against itself under other settings (A = old, B = new), e.g. the
prediction store off against on:

    python bench/ab.py --old-env SYNERGY_STORE_PREDICTIONS=false --min-ratio 0.90 \
        --models iris-knn,binary-mlp,mnist-cnn,imdb-sentiment

For each model, starts both servers (each `python -m app` of its checkout, defaults,
the committed models of this checkout) and runs wrk at concurrency 64 with a real held-out
example, alternating old and new for --rounds rounds of --seconds each, so both share the
machine's drift. Prints requests/s and p99 per round and the new/old ratio of the totals.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, report, request_bodies, run_wrk, start_ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--old", type=Path, default=ROOT, help="the other checkout's root (default: this one)"
    )
    parser.add_argument(
        "--old-env", action="append", default=[], help="KEY=VALUE setting of the old server"
    )
    parser.add_argument(
        "--new-env", action="append", default=[], help="KEY=VALUE setting of the new server"
    )
    parser.add_argument("--min-ratio", type=float, default=0.95, help="goal: new/old >= this")
    parser.add_argument("--models", default="mnist-cnn,iris-knn")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bodies = request_bodies(ROOT / "models", Path(tempfile.mkdtemp()))
    result: dict[str, dict[str, Any]] = {}
    print(
        "| model | round | old req/s | new req/s | old p99 ms | new p99 ms "
        "| old CPU us/req | new CPU us/req |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for model in args.models.split(","):
        with ExitStack() as stack:
            envs = {"old": _env(args.old_env), "new": _env(args.new_env)}
            started = {
                name: start_ours(
                    stack,
                    args.out / f"ab-{name}.log",
                    root=root,
                    # Each server its own, empty prediction store.
                    SYNERGY_STORE_DIR=tempfile.mkdtemp(prefix=f"ab-store-{name}-"),
                    **envs[name],
                )
                for name, root in (("old", args.old.resolve()), ("new", ROOT))
            }
            servers = {name: port for name, (_, port) in started.items()}
            pids = {name: process.pid for name, (process, _) in started.items()}
            for port in servers.values():
                run_wrk(port, model, bodies[model], args.concurrency, 2)  # warm-up
            runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
            for round_ in range(args.rounds):
                order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
                for name in order:
                    cpu_before = cpu_s(pids[name])
                    run = run_wrk(
                        servers[name], model, bodies[model], args.concurrency, args.seconds
                    )
                    time.sleep(CPU_SETTLE_S)  # work the server does after answering counts too
                    run["cpu_us_per_request"] = (
                        1e6 * (cpu_s(pids[name]) - cpu_before) / max(1, run["requests"])
                    )
                    runs[name].append(run)
                old, new = runs["old"][-1], runs["new"][-1]
                print(
                    f"| {model} | {round_ + 1} | {old['rps']:,.0f} | {new['rps']:,.0f} | "
                    f"{old['p99_ms']:.1f} | {new['p99_ms']:.1f} | "
                    f"{old['cpu_us_per_request']:.0f} | {new['cpu_us_per_request']:.0f} |"
                )
            # Rows the prediction store dropped (queue full): the store must keep up, not
            # shed its work to look cheap. Absent (0) where the store is off or unknown.
            dropped = {name: _dropped_rows(port) for name, port in servers.items()}
        totals = {name: sum(r["requests"] for r in rs) for name, rs in runs.items()}
        errors = {name: sum(r["errors"] for r in rs) for name, rs in runs.items()}
        result[model] = {
            "old_rps": sum(r["rps"] for r in runs["old"]) / args.rounds,
            "new_rps": sum(r["rps"] for r in runs["new"]) / args.rounds,
            "ratio": totals["new"] / totals["old"],
            # Server CPU per request (all threads, from /proc): on a shared, noisy machine a
            # steadier view of the cost than requests/s.
            "cpu_ratio": _cpu_per_request(runs["new"]) / _cpu_per_request(runs["old"]),
            "errors": errors,
            "store_dropped_rows": dropped,
        }
    print(
        "\n| model | old req/s (mean) | new req/s (mean) | new/old | CPU per request new/old "
        "| store rows dropped old/new |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for model, row in result.items():
        dropped = row["store_dropped_rows"]
        print(
            f"| {model} | {row['old_rps']:,.0f} | {row['new_rps']:,.0f} | {row['ratio']:.3f} "
            f"| {row['cpu_ratio']:.3f} | {dropped['old']:.0f} / {dropped['new']:.0f} |"
        )
    checks = [
        (f"{model}: new >= {args.min_ratio:g} x old", row["ratio"] >= args.min_ratio)
        for model, row in result.items()
    ]
    return report(result, checks, args.out / "ab.json")


CPU_SETTLE_S = 0.5


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_per_request(runs: list[dict[str, Any]]) -> float:
    total: float = sum(r["cpu_us_per_request"] * r["requests"] for r in runs) / max(
        1, sum(r["requests"] for r in runs)
    )
    return total


def _dropped_rows(port: int) -> float:
    """synergy_monitoring_dropped_rows_total{sink="store"} of a server (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("synergy_monitoring_dropped_rows_total{") and 'sink="store"' in line
    )


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


if __name__ == "__main__":
    sys.exit(main())
