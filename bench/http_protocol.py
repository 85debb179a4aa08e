"""A/B of the HTTP protocol on the hot path: uvicorn's stock httptools protocol against
`app.server.BoundedHttpProtocol` (the same parser plus the connection limits).

Starts the service twice per round (same app, same settings, only the protocol differs), on
iris-knn (the cheapest model, so the HTTP layer weighs most), drives each with wrk from a
separate process, alternating A and B so that the shared machine's noise falls on both, and
prints a markdown table. Bounded: rounds x 2 x seconds of load.

    python bench/http_protocol.py [--rounds 3] [--seconds 10] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, free_port, request_bodies, run_wrk, start, wait_ready

PROTOCOLS = ("httptools", "bounded")


def serve(protocol: str) -> None:
    """Run the service with one protocol (a child process of the benchmark)."""
    import uvicorn

    from app.logs import configure_logging
    from app.main import create_app
    from app.server import ConnectionLimits, bounded_protocol
    from app.settings import Settings

    settings = Settings()
    configure_logging(settings.logging.log_level)
    http: object = "httptools"
    if protocol == "bounded":
        http = bounded_protocol(
            ConnectionLimits(
                max_connections=settings.connections.max_connections,
                max_header_bytes=settings.connections.max_header_bytes,
                max_header_count=settings.connections.max_header_count,
                header_timeout_s=settings.connections.header_timeout_s,
                body_timeout_s=settings.connections.body_timeout_s,
            )
        )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.serving.host,
        port=settings.serving.port,
        log_config=None,
        access_log=False,
        http=http,  # type: ignore[arg-type]
        timeout_keep_alive=settings.connections.keep_alive_timeout_s,
    )
    uvicorn.Server(config).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--serve", choices=PROTOCOLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    results: dict[str, list[dict[str, float]]] = {p: [] for p in PROTOCOLS}
    with tempfile.TemporaryDirectory() as scratch:
        models = Path(scratch) / "models"
        for model in ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment"):
            shutil.copytree(ROOT / "models" / model, models / model)
        body = request_bodies(models, Path(scratch))["iris-knn"]
        shutil.rmtree(models / "binary-mlp")
        shutil.rmtree(models / "mnist-cnn")
        shutil.rmtree(models / "imdb-sentiment")
        for round_ in range(args.rounds):
            for protocol in PROTOCOLS if round_ % 2 == 0 else PROTOCOLS[::-1]:
                with ExitStack() as stack:
                    port = free_port()
                    env = {
                        **os.environ,
                        "PYTHONPATH": str(ROOT),
                        "SYNERGY_MODELS_DIR": str(models),
                        "SYNERGY_PORT": str(port),
                        "SYNERGY_LOG_REQUESTS": "false",
                    }
                    process = start(
                        stack,
                        [sys.executable, str(Path(__file__).resolve()), "--serve", protocol],
                        env,
                        Path(scratch) / f"{protocol}-{round_}.log",
                    )
                    wait_ready(port, process)
                    run_wrk(port, "iris-knn", body, args.concurrency, 2)  # warm
                    results[protocol].append(
                        run_wrk(port, "iris-knn", body, args.concurrency, args.seconds)
                    )
    print(f"iris-knn :predict, concurrency {args.concurrency}, {args.seconds:g} s x "
          f"{args.rounds} alternating rounds, median of rounds\n")  # fmt: skip
    print("| protocol | requests/s | p50 ms | p99 ms | errors | rounds (requests/s) |")
    print("|---|---|---|---|---|---|")
    for protocol, runs in results.items():
        print(
            f"| {protocol} | {statistics.median(r['rps'] for r in runs):.0f} | "
            f"{statistics.median(r['p50_ms'] for r in runs):.2f} | "
            f"{statistics.median(r['p99_ms'] for r in runs):.2f} | "
            f"{sum(r['errors'] for r in runs):.0f} | "
            f"{', '.join(format(r['rps'], '.0f') for r in runs)} |"
        )


if __name__ == "__main__":
    main()
