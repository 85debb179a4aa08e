"""A/B of the hot path: this checkout against another (an older commit), in one window.

    python bench/ab.py --baseline bae7060 --ceiling --models all

gives, per model, this checkout against the release `bae7060` (its code extracted with
`git archive` into a temporary folder, run with this virtualenv and its own committed
models) against the no-framework ceiling (`bench/raw_ceiling.py` on uvicorn), all three in
one rotation. `--old <dir>` takes any other checkout instead (`git archive <commit> | tar -x
-C /tmp/old`).

Or this checkout against itself under other settings (A = old, B = new), e.g. the
prediction store off against on:

    python bench/ab.py --old-env SYNERGY_STORE_PREDICTIONS=false --min-ratio 0.90 \
        --models iris-knn,binary-mlp,mnist-cnn,imdb-sentiment

For each model, starts the servers (each `python -m app` of its checkout, defaults, that
checkout's committed models) and runs wrk at concurrency 64 with a real held-out example,
rotating the servers' order every round for --rounds rounds of --seconds each, so all share
the machine's drift. Prints requests/s, p99 and server CPU per request per round, and the
ratios of the totals of answered requests (refusals, such as a 503 when the model is
overloaded, do not count). `--c1-seconds` adds a concurrency-1 run per server (p50: the
latency of a lone request), `--bulk-seconds` a run of 1,000-row requests at concurrency 2
(rows/s answered).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    MODELS,
    ROOT,
    free_port,
    report,
    request_bodies,
    run_wrk,
    start,
    start_ours,
    wait_ready,
)

BULK_ROWS = 1000
# Two bulk clients share a model without refusals (a third or fourth may be told to retry:
# see app.batching's admission); refused requests are not counted as rows served.
BULK_CONCURRENCY = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--old", type=Path, default=None, help="the other checkout's root (default: this one)"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="a commit of this repository to run as the old side (git archive into a "
        "temporary folder), e.g. bae7060",
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="add the no-framework ceiling to the rotation"
    )
    parser.add_argument(
        "--handoff",
        action="store_true",
        help="add the ceiling plus a worker-thread hand-off (bench/handoff_ceiling.py)",
    )
    parser.add_argument(
        "--granian",
        action="store_true",
        help="add this checkout served by granian (ASGI, uvloop) to the rotation",
    )
    parser.add_argument(
        "--old-env", action="append", default=[], help="KEY=VALUE setting of the old server"
    )
    parser.add_argument(
        "--new-env", action="append", default=[], help="KEY=VALUE setting of the new server"
    )
    parser.add_argument("--min-ratio", type=float, default=0.95, help="goal: new/old >= this")
    parser.add_argument(
        "--models", default="mnist-cnn,iris-knn", help="comma-separated, or all (the four)"
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--c1-seconds", type=float, default=0.0, help="a concurrency-1 run per server (p50)"
    )
    parser.add_argument(
        "--bulk-seconds", type=float, default=0.0, help="a 1,000-row run per server (rows/s)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    old_root = (args.old or ROOT).resolve()
    if args.baseline:
        old_root = _extract(args.baseline)
    bodies = request_bodies(ROOT / "models", Path(tempfile.mkdtemp()))
    bulk_bodies = _bulk_bodies(bodies, Path(tempfile.mkdtemp())) if args.bulk_seconds else {}
    names = ["old", "new"]
    names += ["ceiling"] if args.ceiling else []
    names += ["handoff"] if args.handoff else []
    names += ["granian"] if args.granian else []
    result: dict[str, dict[str, Any]] = {}
    print(
        "| model | round | "
        + " | ".join(f"{n} req/s" for n in names)
        + " | "
        + " | ".join(f"{n} p99 ms" for n in names)
        + " | "
        + " | ".join(f"{n} CPU us/req" for n in names)
        + " |"
    )
    print("|---|---:|" + "---:|" * (3 * len(names)))
    models = MODELS if args.models == "all" else tuple(args.models.split(","))
    for model in models:
        with ExitStack() as stack:
            envs = {"old": _env(args.old_env), "new": _env(args.new_env)}
            started = {
                name: start_ours(
                    stack,
                    args.out / f"ab-{name}.log",
                    # Each checkout with its own committed models: an older release may not
                    # read newer cards.
                    models_dir=root / "models",
                    root=root,
                    # Each server its own, empty prediction store.
                    SYNERGY_STORE_DIR=tempfile.mkdtemp(prefix=f"ab-store-{name}-"),
                    **envs[name],
                )
                for name, root in (("old", old_root), ("new", ROOT))
            }
            if args.ceiling:
                started["ceiling"] = _start_ceiling(stack, args.out / "ab-ceiling.log")
            if args.handoff:
                started["handoff"] = _start_ceiling(
                    stack, args.out / "ab-handoff.log", "bench.handoff_ceiling:app"
                )
            if args.granian:
                started["granian"] = _start_granian(
                    stack, args.out / "ab-granian.log", _env(args.new_env)
                )
            servers = {name: port for name, (_, port) in started.items()}
            pids = {name: process.pid for name, (process, _) in started.items()}
            for port in servers.values():
                run_wrk(port, model, bodies[model], args.concurrency, 2)  # warm-up
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for round_ in range(args.rounds):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    runs[name].append(
                        _measured(
                            pids[name],
                            servers[name],
                            model,
                            bodies[model],
                            args,
                            tree=name == "granian",
                        )
                    )
                last = {name: runs[name][-1] for name in names}
                print(
                    f"| {model} | {round_ + 1} | "
                    + " | ".join(f"{last[n]['rps']:,.0f}" for n in names)
                    + " | "
                    + " | ".join(f"{last[n]['p99_ms']:.1f}" for n in names)
                    + " | "
                    + " | ".join(f"{last[n]['cpu_us_per_request']:.0f}" for n in names)
                    + " |"
                )
            c1: dict[str, list[dict[str, Any]]] = {name: [] for name in ("old", "new")}
            bulk: dict[str, list[dict[str, Any]]] = {name: [] for name in ("old", "new")}
            for round_ in range(2 if args.c1_seconds or args.bulk_seconds else 0):
                for name in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
                    if args.c1_seconds:
                        c1[name].append(
                            run_wrk(servers[name], model, bodies[model], 1, args.c1_seconds)
                        )
                    if args.bulk_seconds:
                        bulk[name].append(
                            run_wrk(
                                servers[name],
                                model,
                                bulk_bodies[model],
                                BULK_CONCURRENCY,
                                args.bulk_seconds,
                            )
                        )
            # Rows the prediction store dropped (queue full): the store must keep up, not
            # shed its work to look cheap. Absent (0) where the store is off or unknown.
            dropped = {name: _dropped_rows(servers[name]) for name in ("old", "new")}
        # Answers, not refusals: a 503 (overloaded) is quick and must not count as served.
        totals = {name: sum(r["requests"] - r["errors"] for r in rs) for name, rs in runs.items()}
        errors = {name: sum(r["errors"] for r in rs) for name, rs in runs.items()}
        row: dict[str, Any] = {
            **{f"{name}_rps": totals[name] / _seconds(runs[name]) for name in names},
            "ratio": totals["new"] / totals["old"],
            # Server CPU per request (all threads, from /proc): on a shared, noisy machine a
            # steadier view of the cost than requests/s.
            "cpu_us_per_request": {name: _cpu_per_request(runs[name]) for name in names},
            "cpu_ratio": _cpu_per_request(runs["new"]) / _cpu_per_request(runs["old"]),
            "p99_ms": {name: _mean(runs[name], "p99_ms") for name in names},
            "errors": errors,
            "store_dropped_rows": dropped,
        }
        if args.granian:
            row["granian_over_uvicorn"] = totals["granian"] / totals["new"]
        if args.ceiling:
            row["x_ceiling"] = totals["new"] / totals["ceiling"]
            row["old_x_ceiling"] = totals["old"] / totals["ceiling"]
        if args.ceiling and args.handoff:
            row["handoff_x_ceiling"] = totals["handoff"] / totals["ceiling"]
        if args.c1_seconds:
            row["c1_p50_ms"] = {name: _mean(c1[name], "p50_ms") for name in c1}
        if args.bulk_seconds:
            row["bulk_rows_per_s"] = {
                name: BULK_ROWS
                * sum(r["requests"] - r["errors"] for r in bulk[name])
                / _seconds(bulk[name])
                for name in bulk
            }
            row["bulk_errors"] = {name: sum(r["errors"] for r in bulk[name]) for name in bulk}
        result[model] = row
    print(
        "\n| model | old req/s | new req/s | new/old | CPU per request new/old "
        "| p99 ms old / new | refused old / new | store rows dropped old/new |"
        + (" ceiling req/s | new/ceiling | old/ceiling |" if args.ceiling else "")
        + (" handoff/ceiling |" if args.ceiling and args.handoff else "")
        + (" c=1 p50 ms old / new |" if args.c1_seconds else "")
        + (" bulk rows/s answered old / new |" if args.bulk_seconds else "")
    )
    print(
        "|---|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|---:|---:|" if args.ceiling else "")
        + ("---:|" if args.ceiling and args.handoff else "")
        + ("---:|" if args.c1_seconds else "")
        + ("---:|" if args.bulk_seconds else "")
    )
    for model, row in result.items():
        dropped = row["store_dropped_rows"]
        line = (
            f"| {model} | {row['old_rps']:,.0f} | {row['new_rps']:,.0f} | {row['ratio']:.3f} "
            f"| {row['cpu_ratio']:.3f} | {row['p99_ms']['old']:.1f} / {row['p99_ms']['new']:.1f} "
            f"| {row['errors']['old']} / {row['errors']['new']} "
            f"| {dropped['old']:.0f} / {dropped['new']:.0f} |"
        )
        if args.ceiling:
            line += (
                f" {row['ceiling_rps']:,.0f} | {row['x_ceiling']:.2f} | "
                f"{row['old_x_ceiling']:.2f} |"
            )
        if "handoff_x_ceiling" in row:
            line += f" {row['handoff_x_ceiling']:.2f} |"
        if args.c1_seconds:
            line += f" {row['c1_p50_ms']['old']:.2f} / {row['c1_p50_ms']['new']:.2f} |"
        if args.bulk_seconds:
            bulk_rate = row["bulk_rows_per_s"]
            line += f" {bulk_rate['old']:,.0f} / {bulk_rate['new']:,.0f} |"
        print(line)
    checks = [
        (f"{model}: new >= {args.min_ratio:g} x old", row["ratio"] >= args.min_ratio)
        for model, row in result.items()
    ]
    return report(result, checks, args.out / "ab.json")


def _measured(
    pid: int, port: int, model: str, body: Path, args: argparse.Namespace, tree: bool = False
) -> dict[str, Any]:
    """One wrk run with the server's CPU seconds per request (`tree`: its worker processes'
    too)."""
    cpu_before = cpu_s(pid, tree)
    run = run_wrk(port, model, body, args.concurrency, args.seconds)
    time.sleep(CPU_SETTLE_S)  # work the server does after answering counts too
    run["cpu_us_per_request"] = 1e6 * (cpu_s(pid, tree) - cpu_before) / max(1, run["requests"])
    return run


def _seconds(runs: list[dict[str, Any]]) -> float:
    return float(sum(r["requests"] / r["rps"] for r in runs if r["rps"])) or 1.0


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return float(sum(r[key] for r in runs)) / max(1, len(runs))


def _extract(commit: str) -> Path:
    """This repository's `commit` as a plain folder (its code and committed models)."""
    folder = Path(tempfile.mkdtemp(prefix=f"ab-{commit}-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _start_ceiling(
    stack: ExitStack, log: Path, app: str = "bench.raw_ceiling:app"
) -> tuple[subprocess.Popen[bytes], int]:
    """The no-framework ceiling (or `app`, a variant of it) on uvicorn (httptools, uvloop),
    ready."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--no-access-log",
        "--log-level",
        "warning",
        "--port",
        str(port),
    ]
    process = start(stack, command, {**os.environ, "PYTHONPATH": str(ROOT)}, log)
    wait_ready(port, process)
    return process, port


def _start_granian(
    stack: ExitStack, log: Path, settings: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """This checkout's app (`create_app`, the same settings) on granian: one worker, ASGI,
    uvloop. For the HTTP-server comparison only: granian has neither our connection limits
    nor our drain (see bench/RESULTS.md)."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "granian"),
        "--interface",
        "asgi",
        "--loop",
        "uvloop",
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--factory",
        "app.main:create_app",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SYNERGY_MODELS_DIR": str(ROOT / "models"),
        "SYNERGY_STORE_DIR": tempfile.mkdtemp(prefix="ab-store-granian-"),
        **settings,
    }
    process = start(stack, command, env, log)
    wait_ready(port, process)
    return process, port


def _bulk_bodies(bodies: dict[str, Path], folder: Path) -> dict[str, Path]:
    """Each model's example, BULK_ROWS times in one request."""
    bulk = {}
    for model, path in bodies.items():
        instance = json.loads(path.read_text())["instances"][0]
        bulk[model] = folder / f"{model}-bulk.json"
        bulk[model].write_text(json.dumps({"instances": [instance] * BULK_ROWS}))
    return bulk


CPU_SETTLE_S = 0.5


def cpu_s(pid: int, tree: bool = False) -> float:
    """User + system CPU seconds of a process, all its threads (from /proc); with `tree`,
    plus its living descendants' (granian serves from a worker process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if tree:
        for child in _children(pid):
            total += cpu_s(child, tree=True)
    return total


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        path = task / "children"
        if path.exists():
            children.extend(int(c) for c in path.read_text().split())
    return children


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
