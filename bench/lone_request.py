"""A lone request's latency (wrk at concurrency 1, p50) of one model, with each per-request
feature turned off in turn, against an older commit: which feature a lone request pays for.

Every server serves the one model alone (a copy of its folder: the repository refuses links)
and all run at once, idle but for the one being measured; rounds alternate between them.

    python bench/lone_request.py --model binary-mlp --baseline bae7060 [--rounds 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import request_bodies, run_wrk, start_ours  # noqa: E402

# Each variant: the settings that differ from the defaults.
VARIANTS: dict[str, dict[str, str]] = {
    "this checkout": {},
    "store off": {"SYNERGY_STORE_PREDICTIONS": "false"},
    "access log off": {"SYNERGY_LOG_REQUESTS": "false"},
    "store and access log off": {
        "SYNERGY_STORE_PREDICTIONS": "false",
        "SYNERGY_LOG_REQUESTS": "false",
    },
    "gRPC off": {"SYNERGY_GRPC_PORT": "0"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="binary-mlp")
    parser.add_argument("--baseline", default="bae7060", help="a commit to run as well")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lone-")))
        old = scratch / "old"
        old.mkdir()
        archive = subprocess.run(
            ["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        bodies = request_bodies(ROOT / "models", scratch)
        servers: dict[str, int] = {}
        sides = [(args.baseline, old, {}), *((k, ROOT, v) for k, v in VARIANTS.items())]
        for index, (name, root, settings) in enumerate(sides):
            alone = scratch / f"models-{index}"
            shutil.copytree(root / "models" / args.model, alone / args.model)
            _, port = start_ours(
                stack, scratch / f"server-{index}.log", models_dir=alone, root=root, **settings
            )
            servers[name] = port
        for port in servers.values():  # warm each up once
            run_wrk(port, args.model, bodies[args.model], 1, 1)
        p50s: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, port in servers.items():
                result = run_wrk(port, args.model, bodies[args.model], 1, args.seconds)
                p50s[name].append(result["p50_ms"])
    print(f"| {args.model}, wrk c=1 | p50 ms by round |")
    print("|---|---|")
    for name, values in p50s.items():
        print(f"| {name} | {' / '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
