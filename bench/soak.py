"""`make bench-soak`: 10 minutes at half capacity across all four models at once.

Capacity is measured per model first (wrk, concurrency 64). Then each model gets a
rate-limited hey load of half its capacity divided by four (so the four together ask for half
of what the server can do), for the whole soak. Checks: zero errors (every response 200), and
flat memory: after a warm-up minute, RSS grows by less than 5%.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    MODELS,
    ROOT,
    RssSampler,
    percentile,
    report,
    request_bodies,
    run_hey,
    run_wrk,
    start_ours,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument("--load", type=float, default=0.5, help="fraction of capacity")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bodies = request_bodies(ROOT / "models", Path(tempfile.mkdtemp()))
    with ExitStack() as stack:
        process, port = start_ours(stack, args.out / "soak-server.log")
        capacity = {}
        for model in MODELS:
            run_wrk(port, model, bodies[model], 64, 3)
            capacity[model] = run_wrk(port, model, bodies[model], 64, 8)["rps"]
        rates = {m: args.load * capacity[m] / len(MODELS) for m in MODELS}
        print(
            f"capacity {capacity}; soaking at {rates} req/s for {args.seconds:g} s", file=sys.stderr
        )
        with RssSampler(process.pid, 5.0) as rss, ThreadPoolExecutor(len(MODELS)) as pool:
            # 16 workers per model keep each rate-limited stream close to an open loop.
            futures = {
                m: pool.submit(
                    run_hey,
                    port,
                    m,
                    bodies[m],
                    workers=16,
                    rate_per_worker=rates[m] / 16,
                    seconds=args.seconds,
                )
                for m in MODELS
            }
            rows = {m: f.result() for m, f in futures.items()}
        samples = rss.samples
        alive = process.poll() is None

    after_warmup = [mb for t, mb in samples if t >= args.warmup_seconds]
    growth = (after_warmup[-1] - after_warmup[0]) / after_warmup[0] if after_warmup else 0.0
    per_model: dict[str, Any] = {}
    for model, results in rows.items():
        latencies = [latency * 1000 for latency, status in results if status == 200]
        per_model[model] = {
            "target_rps": round(rates[model], 1),
            "achieved_rps": round(len(results) / args.seconds, 1),
            "requests": len(results),
            "errors": sum(status != 200 for _, status in results),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
        }
    result = {
        "seconds": args.seconds,
        "capacity_rps": capacity,
        "models": per_model,
        "rss_mb_after_warmup": [round(after_warmup[0], 1), round(after_warmup[-1], 1)]
        if after_warmup
        else [],
        "rss_mb_max": round(max(r for _, r in samples), 1) if samples else None,
        "rss_growth_after_warmup": round(growth, 4),
        "process_alive": alive,
    }
    checks = [
        ("process alive", alive),
        ("0 errors", all(m["errors"] == 0 for m in per_model.values())),
        ("RSS growth < 5% after warm-up", growth < 0.05),
    ]
    return report(result, checks, args.out / "soak.json")


if __name__ == "__main__":
    sys.exit(main())
