"""CPU cost of a `:predict` request through the whole app, this checkout against another
(in-process, no network): the A/B for issue 11's core, less exposed to a shared machine's
noise than wrk's requests/s.

    git archive <commit> | tar -x -C /tmp/old && python bench/core_cost.py --old /tmp/old

Or this checkout against itself under other settings (old = A, new = B), e.g. the
prediction store off against on (each child gets its own, empty store):

    python bench/core_cost.py --old-env SYNERGY_STORE_PREDICTIONS=false

For each model, a fresh subprocess per checkout builds its app (`create_app`, defaults) serving
that one committed model of this checkout, waits until ready, then 64 concurrent callers send
--requests single-instance requests (a real held-out example) through the ASGI interface
(middleware, fast path, protocol, core, batcher, model). Rounds alternate old/new (A B A B).
Prints CPU microseconds per request (the process's CPU time over all its threads, divided
by the requests) and requests/s of wall time, per round, and the new/old ratio of the CPU
totals.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import MODELS, ROOT, request_bodies

CHILD = """
import asyncio, json, os, sys, time
sys.path.insert(0, sys.argv[1])
os.environ["SYNERGY_MODELS_DIR"] = sys.argv[2]
os.environ["SYNERGY_LOG_REQUESTS"] = "false"
import httpx
from app.main import create_app
from app.settings import Settings

async def main(model, body, total):
    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        await app.state.service.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            url = f"/v1/models/{model}:predict"
            headers = {"Content-Type": "application/json"}
            left = errors = 0

            async def caller():
                nonlocal left, errors
                while left > 0:
                    left -= 1
                    response = await client.post(url, content=body, headers=headers)
                    errors += response.status_code != 200  # 503s of a machine too busy

            left = total // 4
            await asyncio.gather(*(caller() for _ in range(64)))  # warm-up
            left, errors = total, 0
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(64)))
            wall = time.perf_counter() - wall
    # After shutdown: work queued by the requests (the prediction store's writer) counts too.
    cpu = time.process_time() - cpu
    print(json.dumps({"cpu_us": cpu / total * 1e6, "rps": total / wall, "errors": errors}))

asyncio.run(main(sys.argv[3], open(sys.argv[4], "rb").read(), int(sys.argv[5])))
"""


def measure(
    root: Path, models: Path, model: str, body: Path, requests: int, env: dict[str, str]
) -> dict[str, float]:
    """One child run (with `env` added to this process's environment): CPU microseconds per
    request and requests/s."""
    store = tempfile.mkdtemp(prefix="core-cost-store-")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(root),
            str(models),
            model,
            str(body),
            str(requests),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "SYNERGY_STORE_DIR": store, **env},
    )
    shutil.rmtree(store, ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(f"{root} {model}: {out.stderr.strip().splitlines()[-3:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"]:
        print(f"({root.name}: {result['errors']:.0f} of {requests} requests not 200)")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--old", type=Path, default=ROOT, help="the other checkout's root (default: this one)"
    )
    parser.add_argument(
        "--old-env", action="append", default=[], help="KEY=VALUE setting of the old child"
    )
    parser.add_argument(
        "--new-env", action="append", default=[], help="KEY=VALUE setting of the new child"
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    bodies = request_bodies(ROOT / "models", Path(tempfile.mkdtemp()))
    # Only the measured model is loaded (start-up in seconds, not a minute per run).
    alone = Path(tempfile.mkdtemp())
    for model in args.models.split(","):
        shutil.copytree(ROOT / "models" / model, alone / model / model)
    roots = {"old": args.old.resolve(), "new": ROOT}
    envs = {name: dict(p.split("=", 1) for p in getattr(args, f"{name}_env")) for name in roots}
    print("| model | round | old CPU us/req | new CPU us/req | old req/s | new req/s |")
    print("|---|---:|---:|---:|---:|---:|")
    totals: dict[str, dict[str, float]] = {}
    for model in args.models.split(","):
        cpu = {"old": 0.0, "new": 0.0}
        for round_ in range(args.rounds):
            order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
            runs = {
                name: measure(
                    roots[name], alone / model, model, bodies[model], args.requests, envs[name]
                )
                for name in order
            }
            for name in cpu:
                cpu[name] += runs[name]["cpu_us"]
            print(
                f"| {model} | {round_ + 1} | {runs['old']['cpu_us']:.0f} | "
                f"{runs['new']['cpu_us']:.0f} | {runs['old']['rps']:,.0f} | "
                f"{runs['new']['rps']:,.0f} |",
                flush=True,
            )
        totals[model] = cpu
    print("\n| model | old CPU us/req (mean) | new CPU us/req (mean) | new/old |")
    print("|---|---:|---:|---:|")
    for model, cpu in totals.items():
        print(
            f"| {model} | {cpu['old'] / args.rounds:.0f} | {cpu['new'] / args.rounds:.0f} | "
            f"{cpu['new'] / cpu['old']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
