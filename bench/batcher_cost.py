"""Event-loop cost of the batcher per request, this checkout against another (in-process).

    python bench/batcher_cost.py --old /tmp/old

64 concurrent callers loop single-row requests through one Batcher with a model that does
nothing, for --requests requests; repeated --rounds times alternating the two checkouts'
`app.batching` (each imported in a fresh subprocess). Prints microseconds per request
(wall time over requests: the loop, the worker thread and the hand-offs, no HTTP).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[1])
from app.batching import Batcher

async def main(total):
    batcher = Batcher("cost", lambda rows: [0] * len(rows), max_batch_size=64)
    batcher.start()
    left = total

    async def caller():
        nonlocal left
        while left > 0:
            left -= 1
            await batcher.predict([1], 10.0)

    await asyncio.gather(*(caller() for _ in range(64)))  # warm-up
    left = total
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(64)))
    elapsed = time.perf_counter() - started
    await batcher.stop()
    print(elapsed / total * 1e6)

asyncio.run(main(int(sys.argv[2])))
"""


def once(root: Path, requests: int) -> float:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(requests)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(result.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"old": [], "new": []}
    for round_ in range(args.rounds):
        order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
        for name in order:
            runs[name].append(once(args.old if name == "old" else ROOT, args.requests))
    print("| checkout | us/request per round | median |")
    print("|---|---|---:|")
    for name, values in runs.items():
        median = sorted(values)[len(values) // 2]
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {median:.1f} |")
    print(json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
