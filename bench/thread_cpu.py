"""CPU per request by thread, this checkout against an older one, under wrk at concurrency 64.

    python bench/thread_cpu.py --baseline bae7060 --models all --rounds 2 --seconds 6

Why by thread: this server is one process whose event loop, model workers and native pools
(XLA, BLAS) share the GIL and two cores, and whose prediction store writes from a child
process. Requests per second on a shared machine move by +-10% between rounds; the CPU each
thread spends per answered request is steadier, and says where a difference comes from (the
event loop's per-request Python, a model worker's per-batch Python, a native pool, the
store's writer) rather than only that there is one.

Each side is `python -m app` of its checkout (defaults, its own committed models), started
with a `sitecustomize` that gives every Python thread its name at the OS level
(`pthread_setname_np`, 15 characters), so that /proc shows `batcher-mnist-c` rather than
`python`. A native thread (XLA's, OpenBLAS's) keeps the name of the thread that started it:
`load-models` for those started while the models load, `native` for the process's own, unless
its library names it (TensorFlow's `tf_XLAEigen`). The process's first thread shows as
`event loop`, the store's writer process as `store writer (process)`. The
servers are loaded in alternating order for --rounds rounds of --seconds each; each thread's
`utime + stime` over a round (/proc/PID/task/TID/stat) is divided by the requests answered
in it, and the rounds are summed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ab import _extract
from bench.common import MODELS, ROOT, request_bodies, run_wrk, start_ours

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# Loaded by the server's interpreter at start-up (PYTHONPATH): names each Python thread at
# the OS level when it starts. Benchmark-only: the service itself is unchanged.
SITECUSTOMIZE = """
import ctypes, threading
try:
    _libc = ctypes.CDLL(None)
    _set = _libc.pthread_setname_np
    _self = _libc.pthread_self
    _self.restype = ctypes.c_ulong
    _set.argtypes = [ctypes.c_ulong, ctypes.c_char_p]
    _run = threading.Thread.run
    def run(self):
        _set(_self(), self.name.encode()[:15])
        _run(self)
    threading.Thread.run = run
except (OSError, AttributeError):
    pass
"""


def _tree(pid: int) -> list[int]:
    """The process and its descendants."""
    found = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += _tree(int(child))
    return found


def _label(pid: int, root_pid: int, tid: int, name: str) -> str:
    if pid != root_pid:
        return "store writer (process)"
    if tid == pid:
        return "event loop"
    if name.startswith("python"):
        return "native"
    if name.startswith("batcher-"):  # a model version's batcher (its name cut to 15 bytes)
        return "model worker"
    # Numbered pools and version suffixes (decode_0, batcher-mnist-cnn/2) as one thread kind.
    return re.sub(r"(_\d+|/\d*)$", "", name)


def cpu_by_thread(root_pid: int) -> dict[str, float]:
    """CPU seconds so far per thread kind of the process tree."""
    seconds: dict[str, float] = defaultdict(float)
    for pid in _tree(root_pid):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            key = _label(pid, root_pid, int(task), name)
            seconds[key] += (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="bae7060", help="a commit to compare")
    parser.add_argument("--old", type=Path, default=None, help="or a checkout's folder")
    parser.add_argument("--models", default="all")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    models = MODELS if args.models == "all" else args.models.split(",")
    old = args.old or _extract(args.baseline)
    sides = {args.baseline if args.old is None else str(args.old): old, "this checkout": ROOT}
    work = Path(tempfile.mkdtemp(prefix="thread-cpu-"))
    (work / "sitecustomize.py").write_text(SITECUSTOMIZE)
    bodies = request_bodies(ROOT / "models", work)
    print("| model | code | req/s | total us/req | by thread, us/req |\n|---|---|---:|---:|---|")
    for model in models:
        used: dict[str, dict[str, float]] = {side: defaultdict(float) for side in sides}
        answered: dict[str, int] = defaultdict(int)
        seconds: dict[str, float] = defaultdict(float)
        with ExitStack() as stack:
            servers = {
                side: start_ours(
                    stack,
                    work / f"{model}-{index}.log",
                    models_dir=root / "models",
                    root=root,
                    PYTHONPATH=f"{root}{os.pathsep}{work}",
                )
                for index, (side, root) in enumerate(sides.items())
            }
            for _process, port in servers.values():  # warm-up: batch sizes, pools, caches
                run_wrk(port, model, bodies[model], args.concurrency, 2)
            for round_ in range(args.rounds):
                order = list(servers) if round_ % 2 == 0 else list(servers)[::-1]
                for side in order:
                    process, port = servers[side]
                    before = cpu_by_thread(process.pid)
                    result = run_wrk(port, model, bodies[model], args.concurrency, args.seconds)
                    after = cpu_by_thread(process.pid)
                    answered[side] += result["requests"] - result["errors"]
                    seconds[side] += result["requests"] / result["rps"] if result["rps"] else 0.0
                    for key, value in after.items():
                        used[side][key] += value - before.get(key, 0.0)
        for side in sides:
            per_request = {k: 1e6 * v / max(1, answered[side]) for k, v in used[side].items()}
            shown = sorted(
                ((k, v) for k, v in per_request.items() if v >= 1), key=lambda kv: -kv[1]
            )
            rate = answered[side] / seconds[side] if seconds[side] else 0.0
            print(
                f"| {model} | {side} | {rate:,.0f} | "
                f"{sum(per_request.values()):.0f} | "
                + ", ".join(f"{k} {v:.0f}" for k, v in shown)
                + " |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
