"""Memory of loading and unloading the same model version again and again (issue 14).

    python bench/reload_memory.py [--models mnist-cnn,imdb-sentiment,iris-knn] [--cycles 20]

Starts `python -m app` on the committed models (polling off), then per model: unloads and
loads it through the repository API (`POST /v2/repository/models/{name}/unload` and `/load`,
each returns when done), `--cycles` times, with one prediction after each load (so the
version is really in use, its batch shapes compiled). Prints the server's RSS after each
cycle, the growth from before the first cycle to after the last (the goal: <= 50 MB over 20
cycles), and the least-squares slope of RSS per cycle, which tells a leak (a steady climb)
from glibc's arenas moving by tens of MB between samples.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, rss_mb, start_ours

GOAL_MB = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mnist-cnn,imdb-sentiment,iris-knn,binary-mlp")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.models.split(",")
    bodies = {}
    for name in names:
        folder = max((ROOT / "models" / name).iterdir(), key=lambda p: int(p.name))
        card = json.loads((folder / "card.json").read_text())
        bodies[name] = {"instances": [card["examples"][0]["instance"]]}
    failed = False
    print("| model | cycle | unload s | load s | RSS MB |")
    print("|---|---:|---:|---:|---:|")
    summary = []
    with ExitStack() as stack:
        process, port = start_ours(
            stack,
            args.out / "reload-server.log",
            SYNERGY_MODEL_POLL_S="0",
            SYNERGY_CONTROL_API="true",
            SYNERGY_LOG_REQUESTS="false",
        )
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=300) as http:
            for name in names:
                http.post(f"/v1/models/{name}:predict", json=bodies[name]).raise_for_status()
                before = rss_mb(process.pid)
                rss: list[float] = []
                for cycle in range(1, args.cycles + 1):
                    started = time.perf_counter()
                    http.post(f"/v2/repository/models/{name}/unload").raise_for_status()
                    unloaded = time.perf_counter()
                    http.post(f"/v2/repository/models/{name}/load").raise_for_status()
                    loaded = time.perf_counter()
                    http.post(f"/v1/models/{name}:predict", json=bodies[name]).raise_for_status()
                    rss.append(rss_mb(process.pid))
                    print(
                        f"| {name} | {cycle} | {unloaded - started:.2f} | "
                        f"{loaded - unloaded:.2f} | {rss[-1]:,.0f} |",
                        flush=True,
                    )
                growth = rss[-1] - before
                cycles = np.arange(1, len(rss) + 1)
                slope = float(np.polyfit(cycles, rss, 1)[0])
                summary.append((name, before, rss[-1], growth, slope))
                failed |= growth > GOAL_MB
    print()
    print(
        f"| model | RSS before MB | after cycle {args.cycles} MB | growth MB "
        "| slope MB/cycle | goal |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name, first, last, growth, slope in summary:
        mark = "ok" if growth <= GOAL_MB else "OVER"
        print(
            f"| {name} | {first:,.0f} | {last:,.0f} | {growth:+,.0f} | {slope:+.2f} "
            f"| <= {GOAL_MB:.0f} {mark} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
