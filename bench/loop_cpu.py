"""Event-loop CPU per request, in process: the app's own Python path, without HTTP or wrk.

    python bench/loop_cpu.py --models mnist-cnn,binary-mlp                  # this checkout
    python bench/loop_cpu.py --baseline bae7060 --models mnist-cnn --pairs 3  # A/B, alternating

Each side runs in a fresh process: `create_app(Settings())` with its lifespan (models loaded,
the prediction store in a temporary folder, every feature at its default), then 64 asyncio
clients send single-instance `:predict` requests (a real held-out example per model, as
`bench/common.request_bodies` makes them) straight to the ASGI app, and the event loop's
thread CPU time (`time.thread_time`) over 2,560 requests is divided by their count, five
times: the best and the median are printed. What it leaves out (uvicorn's parsing and socket
writes) is the same code on both sides, and the models' forward passes run on their worker
threads, outside this count; so on a shared machine this is a much steadier figure than
requests per second. The last columns are the whole process's CPU per request (every thread:
the models' workers, XLA's and BLAS's pools, the store's shipper; not the store's writer
process), where per-batch costs show. `SYNERGY_MAX_QUEUE_WAIT_MS` is raised so that
admission control does not refuse the in-process flood (a refusal is cheaper and would
flatter a side).

`--calls` counts the Python calls per request on the event loop instead (cProfile's call
counts over 2 rounds of 640 requests: the same on a busy machine as on a quiet one, a proxy
for the interpreter's work per request that no other load moves):

    python bench/loop_cpu.py --calls --baseline bae7060 --models binary-mlp --pairs 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab import _extract
from bench.common import MODELS, ROOT, request_bodies

CLIENTS = 64
PER_CLIENT = 40
ROUNDS = 5

SIDE = r"""
import asyncio, json, os, sys, time
root, path, body_file = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, root)
from app.main import create_app
from app.settings import Settings
import uvloop

body = open(body_file, "rb").read()

async def main():
    app = create_app(Settings())
    inbox, outbox = asyncio.Queue(), asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    statuses = {}
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]

    async def one():
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
        given = False

        async def receive():
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)

        async def send(message):
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    async def client(count):
        for _ in range(count):
            await one()

    for _ in range(600):  # until the model is ready
        statuses.clear()
        await one()
        if 200 in statuses:
            break
        await asyncio.sleep(0.1)
    await asyncio.gather(*(client(50) for _ in range(CLIENTS)))  # warm-up
    figures, process = [], []
    profile = None
    if os.environ.get("LOOP_CPU_CALLS"):  # count Python calls instead (see --calls)
        import cProfile
        profile = cProfile.Profile()
        profile.enable()
    for _ in range(ROUNDS):
        statuses.clear()
        cpu, every = time.thread_time(), time.process_time()
        await asyncio.gather(*(client(PER_CLIENT) for _ in range(CLIENTS)))
        figures.append(1e6 * (time.thread_time() - cpu) / (CLIENTS * PER_CLIENT))
        process.append(1e6 * (time.process_time() - every) / (CLIENTS * PER_CLIENT))
    calls = None
    if profile is not None:
        profile.disable()
        profile.create_stats()
        calls = sum(v[1] for v in profile.stats.values()) / (CLIENTS * PER_CLIENT * ROUNDS)
    result = {"us": figures, "process_us": process, "statuses": statuses, "calls": calls}
    print("RESULT " + json.dumps(result))
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    lifespan.cancel()

CLIENTS, PER_CLIENT, ROUNDS = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
uvloop.run(main())
"""


def measure(
    root: Path,
    model: str,
    body: Path,
    rounds: int = ROUNDS,
    per_client: int = PER_CLIENT,
    calls: bool = False,
) -> dict[str, object]:
    """One side, in a fresh process: event-loop CPU us per request, per round (with `calls`,
    also the Python calls per request, under cProfile)."""
    models = root / "models" if (root / "models").is_dir() else ROOT / "models"
    env = {
        **os.environ,
        "SYNERGY_MODELS_DIR": str(models),
        "SYNERGY_STORE_DIR": tempfile.mkdtemp(prefix="loop-cpu-store-"),
        "SYNERGY_MAX_QUEUE_WAIT_MS": "5000",
        "SYNERGY_LOG_LEVEL": "warning",
        # No gRPC listener: the ASGI app is called directly, and another server on the
        # machine must not make a side fail to start.
        "SYNERGY_GRPC_PORT": "0",
    }
    if calls:
        env["LOOP_CPU_CALLS"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SIDE,
            str(root),
            f"/v1/models/{model}:predict",
            str(body),
            str(CLIENTS),
            str(per_client),
            str(rounds),
        ],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,  # a side may abort at exit (threads still in native code): its figures stand
    )
    lines = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(
            f"{root} {model}: no result (exit {result.returncode}): {result.stderr[-2000:]}"
        )
    line = lines[0]
    parsed: dict[str, object] = json.loads(line.removeprefix("RESULT "))
    return parsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="a commit to compare, alternating")
    parser.add_argument("--models", default="all")
    parser.add_argument("--pairs", type=int, default=2, help="alternations per model")
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help="measured rounds per process; the best is kept, so on a busy machine more, "
        "shorter rounds (e.g. --rounds 20 --per-client 10) find its quiet moments",
    )
    parser.add_argument(
        "--per-client", type=int, default=PER_CLIENT, help="requests per client per round"
    )
    parser.add_argument(
        "--calls", action="store_true", help="Python calls per request instead of CPU time"
    )
    args = parser.parse_args()
    bodies = request_bodies(ROOT / "models", Path(tempfile.mkdtemp()))
    models = MODELS if args.models == "all" else tuple(args.models.split(","))
    sides = [("this checkout", ROOT)]
    if args.baseline:
        sides.insert(0, (args.baseline, _extract(args.baseline)))
    if args.calls:
        print("| model | code | Python calls per request on the event loop |")
        print("|---|---|---:|")
        for model in models:
            for name, root in sides:
                figure = measure(root, model, bodies[model], 2, 10, calls=True)["calls"]
                assert isinstance(figure, float)
                print(f"| {model} | {name} | {figure:.1f} |")
        return 0
    print(
        "| model | code | event-loop CPU us/req, best | median | per run (best of each) "
        "| whole process CPU us/req, best | median |"
    )
    print("|---|---|---:|---:|---|---:|---:|")
    for model in models:
        runs: dict[str, list[float]] = {name: [] for name, _ in sides}
        whole: dict[str, list[float]] = {name: [] for name, _ in sides}
        for _ in range(args.pairs):
            for name, root in sides:
                result = measure(root, model, bodies[model], args.rounds, args.per_client)
                figures, process = result["us"], result["process_us"]
                assert isinstance(figures, list) and isinstance(process, list)
                runs[name].append(min(figures))
                whole[name].append(min(process))
        for name, _ in sides:
            best = runs[name]
            print(
                f"| {model} | {name} | {min(best):.0f} | {statistics.median(best):.0f} | "
                + ", ".join(f"{x:.0f}" for x in best)
                + f" | {min(whole[name]):.0f} | {statistics.median(whole[name]):.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
