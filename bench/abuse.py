"""The red-team failures of issue 24, re-run against two checkouts (old and new), briefly.

    git archive <commit> | tar -x -C /tmp/old && python bench/abuse.py --old /tmp/old

For each checkout, on a real server (`python -m app`, committed models, its defaults unless
named), measures:

* store growth: gzipped requests of long identical reviews to imdb-sentiment (each about
  12 KB on the wire); the SQLite store's bytes per request once written, the request rate,
  and from both the time one client needs to fill a 1 GiB volume (or the size the store
  stays at, under a byte budget);
* payload-log memory: the same requests with the payload log POSTing to a sink that takes
  4 s per batch; the server's RSS growth over the run;
* an unload without an admin key, and feedback sent with another caller's key: the statuses.

Short runs (the machine is shared): figures are for orders of magnitude, not decimals.
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, free_port, start_ours

REVIEW = (
    "this film is a quiet masterpiece with a story that builds slowly and an ending that "
    "stays with you for days "
) * 90  # ~10,000 characters
INSTANCES = 600
KEYS = {"a": "bench-key-a-0123456789", "b": "bench-key-b-0123456789"}
ADMIN = "bench-admin-0123456789"


def _body(port: int) -> bytes:
    """A gzipped V2 request (the protocol that takes compressed bodies) of long reviews."""
    url = f"http://127.0.0.1:{port}/v2/models/imdb-sentiment"
    with urllib.request.urlopen(url, timeout=30) as answer:
        name = json.loads(answer.read())["inputs"][0]["name"]
    tensor = {"name": name, "datatype": "BYTES", "shape": [INSTANCES], "data": [REVIEW] * INSTANCES}
    return gzip.compress(json.dumps({"inputs": [tensor]}).encode(), 9)


def _infer_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v2/models/imdb-sentiment/infer"


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float = 120) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def _store_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("monitoring.sqlite3*") if f.is_file())


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _SlowSink(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        time.sleep(4)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def store_growth(root: Path, out: Path, requests: int, env: dict[str, str]) -> dict[str, Any]:
    store = out / f"store-{root.name}-{time.monotonic_ns()}"
    with ExitStack() as stack:
        process, port = start_ours(
            stack,
            out / f"abuse-store-{root.name}.log",
            root=root,
            models_dir=ROOT / "models",
            SYNERGY_STORE_DIR=str(store),
            SYNERGY_LOG_REQUESTS="false",
            **env,
        )
        url = _infer_url(port)
        body = _body(port)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        before = _store_bytes(store)
        started = time.perf_counter()
        statuses = [_post(url, body, headers) for _ in range(requests)]
        elapsed = time.perf_counter() - started
        del process
    # After the server stopped: a SIGTERM writes every queued row first.
    grown = _store_bytes(store) - before
    per_request = grown / requests
    rate = requests / elapsed
    return {
        "wire_bytes": len(body),
        "ok": statuses.count(200),
        "store_bytes_per_request": per_request,
        "requests_per_s": rate,
        "seconds_to_fill_1GiB": (2**30 / (per_request * rate)) if per_request > 0 else None,
        "store_bytes": grown,
    }


def payload_memory(root: Path, out: Path, seconds: float) -> dict[str, Any]:
    sink_port = free_port()
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", sink_port), _SlowSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        with ExitStack() as stack:
            process, port = start_ours(
                stack,
                out / f"abuse-payload-{root.name}.log",
                root=root,
                models_dir=ROOT / "models",
                SYNERGY_STORE_PREDICTIONS="false",
                SYNERGY_LOG_REQUESTS="false",
                SYNERGY_PAYLOAD_LOG=f"http://127.0.0.1:{sink_port}/events",
            )
            url = _infer_url(port)
            body = _body(port)
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            rss_before = _rss_mb(process.pid)
            deadline = time.monotonic() + seconds
            sent = 0
            peak = rss_before
            statuses = []
            while time.monotonic() < deadline:
                statuses.append(_post(url, body, headers))
                sent += 1
                peak = max(peak, _rss_mb(process.pid))
            return {
                "requests": sent,
                "ok": statuses.count(200),
                "upload_bytes": sent * len(body),
                "rss_before_mb": rss_before,
                "rss_peak_mb": peak,
                "rss_growth_mb": peak - rss_before,
            }
    finally:
        sink.shutdown()


def control_and_feedback(root: Path, out: Path) -> dict[str, Any]:
    with ExitStack() as stack:
        _, port = start_ours(
            stack,
            out / f"abuse-control-{root.name}.log",
            root=root,
            models_dir=ROOT / "models",
            SYNERGY_LOG_REQUESTS="false",
            SYNERGY_STORE_DIR=str(out / f"store-control-{time.monotonic_ns()}"),
            SYNERGY_API_KEYS=",".join(KEYS.values()),
            SYNERGY_ADMIN_API_KEYS=ADMIN,
            SYNERGY_MODEL_POLL_S="0",
        )
        base = f"http://127.0.0.1:{port}"

        def auth(key: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        iris = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
        _post(
            f"{base}/v1/models/iris-knn:predict", iris, {**auth(KEYS["a"]), "X-Request-ID": "r-1"}
        )
        stolen = json.dumps({"request_id": "r-1", "labels": ["virginica"]}).encode()
        feedback_other = _post(f"{base}/v1/models/iris-knn:feedback", stolen, auth(KEYS["b"]))
        feedback_own = _post(f"{base}/v1/models/iris-knn:feedback", stolen, auth(KEYS["a"]))
        unload = f"{base}/v2/repository/models/iris-knn/unload"
        return {
            "feedback_with_another_key": feedback_other,
            "feedback_with_the_predicting_key": feedback_own,
            "unload_with_a_prediction_key": _post(unload, b"", auth(KEYS["a"])),
            "unload_with_no_key": _post(unload, b"", {}),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the old checkout's root")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--payload-seconds", type=float, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--only", choices=["store", "payload_log", "control_and_feedback"], default=None
    )
    parser.add_argument(
        "--budget-bytes", type=int, default=16 * 1024 * 1024, help="new: SYNERGY_STORE_MAX_BYTES"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for label, root, env in (
        ("old", args.old.resolve(), {}),
        ("new", ROOT, {"SYNERGY_STORE_MAX_BYTES": str(args.budget_bytes)}),
    ):
        results[label] = {}
        if args.only in (None, "store"):
            results[label]["store"] = store_growth(root, args.out, args.requests, env)
        if args.only in (None, "payload_log"):
            results[label]["payload_log"] = payload_memory(root, args.out, args.payload_seconds)
        if args.only in (None, "control_and_feedback"):
            results[label]["control_and_feedback"] = control_and_feedback(root, args.out)
        print(label, json.dumps(results[label], indent=1), flush=True)
    (args.out / "abuse.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
