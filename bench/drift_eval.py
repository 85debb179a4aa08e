"""Drift detection end to end: delay to flag a real shift, false flags on held-out traffic.

    python bench/drift_eval.py --data-dir ../shared/data

Starts `python -m app` on the committed models (each version needs its profile.json) with a
fresh prediction store, and sends real data through `:predict` in requests of 10 instances:

1. False flags: for each model, --windows windows of SYNERGY_DRIFT_WINDOW_ROWS (200) rows
   drawn from the held-out split its trainer kept out (disjoint windows while rows last, then
   reshuffled; binary-mlp's 300 held-out rows give 200 distinct rows a window; iris has only
   30 held-out flowers, so its windows are drawn with replacement), each followed by
   GET .../monitoring: a window is a false flag when any statistic is flagged. Goal: at most
   1 window in 20 per model.
2. Delay: iris requests from the held-out data with petal length + 1.5 cm, after a clean
   window: shifted rows sent until the report flags drift, in steps of 10 rows, --trials
   times. Goal: flagged within 200 rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, report, start_ours

MODELS = ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment")
WINDOW = 200
STEP = 10


def _call(port: int, method: str, path: str, body: Any = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _as_instance(row: Any) -> Any:
    return row if isinstance(row, str) else np.asarray(row).tolist()


def send(port: int, model: str, rows: list[Any]) -> None:
    for start in range(0, len(rows), STEP):
        chunk = [_as_instance(r) for r in rows[start : start + STEP]]
        _call(port, "POST", f"/v1/models/{model}:predict", {"instances": chunk})


def drift_after(port: int, model: str, predicted_rows: int) -> dict[str, Any]:
    """The drift report once the store holds `predicted_rows` rows of the model."""
    deadline = time.monotonic() + 60
    while True:
        version = _call(port, "GET", f"/v1/models/{model}/monitoring")["versions"][-1]
        if version["rows_predicted"] >= predicted_rows or time.monotonic() > deadline:
            drift: dict[str, Any] = version["drift"]
            return drift
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from training.profile import serving_rows
    from training.splits import load_split

    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"window_rows": WINDOW, "false_flags": {}, "delay_rows": []}
    with ExitStack() as stack:
        _, port = start_ours(
            stack,
            args.out / "drift-server.log",
            SYNERGY_STORE_DIR=tempfile.mkdtemp(prefix="drift-store-"),
            SYNERGY_STORE_FLUSH_INTERVAL_MS="20",
            SYNERGY_LOG_REQUESTS="false",
        )
        sent: dict[str, int] = {}
        print("| model | held-out rows | windows | false flags | flagged statistics |")
        print("|---|---:|---:|---:|---|")
        for model in args.models.split(","):
            held_out = serving_rows(load_split(model, args.data_dir).x_test)
            replace = len(held_out) < WINDOW
            order, position = rng.permutation(len(held_out)), 0
            flags, stats_flagged = 0, set()
            for _ in range(args.windows):
                if replace:
                    index = rng.integers(0, len(held_out), WINDOW)
                else:  # disjoint windows, reshuffled when the held-out rows run out
                    if position + WINDOW > len(held_out):
                        order, position = rng.permutation(len(held_out)), 0
                    index = order[position : position + WINDOW]
                    position += WINDOW
                send(port, model, [held_out[i] for i in index])
                sent[model] = sent.get(model, 0) + WINDOW
                drift = drift_after(port, model, sent[model])
                if drift["flagged"]:
                    flags += 1
                    stats_flagged |= {s["statistic"] for s in drift["statistics"] if s["flag"]}
            result["false_flags"][model] = {
                "windows": args.windows,
                "flagged": flags,
                "held_out_rows": len(held_out),
                "with_replacement": replace,
                "statistics": sorted(stats_flagged),
            }
            print(
                f"| {model} | {len(held_out)} | {args.windows} | {flags} | "
                f"{', '.join(sorted(stats_flagged)) or '-'} |"
            )
        iris = serving_rows(load_split("iris-knn", args.data_dir).x_test)
        for _ in range(args.trials):
            clean = [iris[i] for i in rng.integers(0, len(iris), WINDOW)]
            send(port, "iris-knn", clean)
            sent["iris-knn"] = sent.get("iris-knn", 0) + WINDOW
            baseline = drift_after(port, "iris-knn", sent["iris-knn"])
            shifted_rows = 0
            while shifted_rows < 2 * WINDOW:
                batch = []
                for i in rng.integers(0, len(iris), STEP):
                    row = np.array(iris[i], dtype=np.float64)
                    row[2] += 1.5  # petal length, cm
                    batch.append(row)
                send(port, "iris-knn", batch)
                shifted_rows += STEP
                sent["iris-knn"] += STEP
                if drift_after(port, "iris-knn", sent["iris-knn"])["flagged"]:
                    break
            result["delay_rows"].append(
                {"baseline_flagged": baseline["flagged"], "shifted_rows": shifted_rows}
            )
    delays = [d["shifted_rows"] for d in result["delay_rows"]]
    print(f"\niris petal length + 1.5 cm flagged after {delays} shifted rows")
    checks = [
        (
            f"{model}: false flags <= 1 window in 20",
            row["flagged"] <= max(1, row["windows"] // 20),
        )
        for model, row in result["false_flags"].items()
    ]
    checks.append(("iris +1.5 cm flagged within 200 rows (every trial)", max(delays) <= 200))
    return report(result, checks, args.out / "drift_eval.json")


if __name__ == "__main__":
    sys.exit(main())
