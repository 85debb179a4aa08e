"""What hostile images cost a real server (issue 13): latency, RSS peak and RSS after.

Generates its inputs, starts `python -m app` with the defaults on the committed models, and
sends, one case after the other (RSS sampled every 20 ms):
1. a JPEG of under a kilobyte whose header claims 5000x5000, uploaded (`:predict-image`);
2. the same as base64 in JSON;
3. six concurrent uploads of a 105 KB 5000x5000 RGBA PNG;
4. six concurrent uploads of a 2000x2000 RGBA PNG (the largest a default server decodes);
5. one V2 request carrying 100 of the JPEGs of case 1 (binary tensor data);
6. one V2 request carrying 100 560x560 RGBA PNGs (31 MP in all, just under the per-request
   budget: ~3 s of decoding on this machine);
7. the same request from a client that hangs up after 0.2 s: how long the server keeps
   decoding after that (its CPU time, from /proc), and what it logs.
Prints a markdown table and checks the issue's figures.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import socket
import struct
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from bench.common import ROOT, RssSampler, access_log, report, rss_mb, start_ours


def claims_5000x5000() -> bytes:
    """~830 bytes of JPEG (a 32x32 noisy digit) whose header says 5000x5000."""
    noise = Image.effect_noise((32, 32), 60)
    buffer = io.BytesIO()
    noise.save(buffer, format="JPEG", quality=90)
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = (5000).to_bytes(2, "big") * 2
    return bytes(data)


def rgba_png(side: int) -> bytes:
    """A transparent canvas with a dark stroke: a drawing app's export, side x side."""
    image = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    stroke = Image.new("RGBA", (side // 10, side // 2), (0, 0, 0, 255))
    image.paste(stroke, (side // 2, side // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "----bench-image-cost"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("POST", path, body, headers)
    response = connection.getresponse()
    text = response.read().decode(errors="replace")
    connection.close()
    return time.perf_counter() - started, response.status, text


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(pid: int, calls: list[Any]) -> dict[str, Any]:
    """Run the calls concurrently (threads); latencies, statuses, RSS before/peak/after."""
    before = rss_mb(pid)
    results: list[tuple[float, int, str]] = []
    with RssSampler(pid, 0.02) as sampler:
        threads = [threading.Thread(target=lambda c=c: results.append(c())) for c in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        time.sleep(0.3)
    time.sleep(1.0)
    after = rss_mb(pid)
    peak = max([before, *(mb for _, mb in sampler.samples)])
    return {
        "latency_ms_max": round(max(r[0] for r in results) * 1000, 1),
        "statuses": sorted({r[1] for r in results}),
        "message": results[0][2][:160],
        "rss_before_mb": round(before, 1),
        "rss_peak_extra_mb": round(peak - before, 1),
        "rss_after_extra_mb": round(after - before, 1),
    }


def v2_body(images: list[bytes]) -> tuple[bytes, dict[str, str]]:
    raw = b"".join(struct.pack("<I", len(image)) + image for image in images)
    tensor = {
        "name": "image",
        "datatype": "BYTES",
        "shape": [len(images)],
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps({"inputs": [tensor]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def hang_up(port: int, body: bytes, headers: dict[str, str], after_s: float, pid: int) -> float:
    """Send the request, close the connection after `after_s`; the server's CPU seconds
    from the hang-up until it is idle again (sampled until 3 s pass without CPU use)."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(
        f"POST /v2/models/mnist-cnn/infer HTTP/1.1\r\nHost: x\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    time.sleep(after_s)
    sock.close()
    start = cpu_s(pid)
    last, idle_since = start, time.monotonic()
    while time.monotonic() - idle_since < 3:
        time.sleep(0.25)
        now = cpu_s(pid)
        if now - last > 0.05:
            idle_since = time.monotonic()
        last = now
    return last - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jpeg, big_png, largest_png = claims_5000x5000(), rgba_png(5000), rgba_png(2000)
    log = args.out / "image-cost-server.log"
    cases: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        process, port = start_ours(stack, log)
        pid = process.pid
        upload = "/v1/models/mnist-cnn:predict-image"
        warm, content_type = multipart(rgba_png(280))
        post(port, upload, warm, {"Content-Type": content_type})

        body, content_type = multipart(jpeg)
        cases[f"upload: {len(jpeg)}-byte JPEG claiming 5000x5000"] = measure(
            pid, [lambda: post(port, upload, body, {"Content-Type": content_type})]
        )
        b64 = json.dumps({"instances": [{"b64": base64.b64encode(jpeg).decode()}]}).encode()
        cases["JSON base64: the same JPEG"] = measure(
            pid,
            [
                lambda: post(
                    port, "/v1/models/mnist-cnn:predict", b64, {"Content-Type": "application/json"}
                )
            ],
        )
        for png, label in ((big_png, "5000x5000"), (largest_png, "2000x2000")):
            body_png, type_png = multipart(png)
            cases[f"6 concurrent uploads: {len(png) // 1000} KB {label} RGBA PNG"] = measure(
                pid,
                [lambda b=body_png, t=type_png: post(port, upload, b, {"Content-Type": t})] * 6,
            )
        v2, headers = v2_body([jpeg] * 100)
        cases["V2: 100 of those JPEGs in one request"] = measure(
            pid, [lambda: post(port, "/v2/models/mnist-cnn/infer", v2, headers)]
        )
        v2, headers = v2_body([rgba_png(560)] * 100)
        cases["V2: 100 560x560 RGBA PNGs in one request"] = measure(
            pid, [lambda: post(port, "/v2/models/mnist-cnn/infer", v2, headers)]
        )
        baseline = rss_mb(pid)
        cpu_after_hang_up = hang_up(port, v2, headers, 0.2, pid)
        time.sleep(0.3)
        hung_up_status = [
            line["status"] for line in access_log(log) if line["path"].endswith("/infer")
        ][-1]
        final = rss_mb(pid)

    print("| case | statuses | latency ms (max) | RSS peak, extra MB | RSS after, extra MB |")
    print("|---|---|---:|---:|---:|")
    for name, case in cases.items():
        print(
            f"| {name} | {case['statuses']} | {case['latency_ms_max']} | "
            f"{case['rss_peak_extra_mb']} | {case['rss_after_extra_mb']} |"
        )
    print(
        f"\nV2 request of 100 PNGs, client gone after 0.2 s: the server used "
        f"{cpu_after_hang_up:.2f} s of CPU after the hang-up and logged {hung_up_status}; "
        f"RSS {baseline:.0f} -> {final:.0f} MB"
    )
    first = cases[f"upload: {len(jpeg)}-byte JPEG claiming 5000x5000"]
    six = cases[f"6 concurrent uploads: {len(big_png) // 1000} KB 5000x5000 RGBA PNG"]
    six_largest = cases[f"6 concurrent uploads: {len(largest_png) // 1000} KB 2000x2000 RGBA PNG"]
    checks = [
        ("tiny JPEG claiming 5000x5000 answered in <= 50 ms", first["latency_ms_max"] <= 50),
        ("... with <= 20 MB extra memory", first["rss_peak_extra_mb"] <= 20),
        (
            "6 concurrent 5000x5000 uploads peak at <= +300 MB",
            six["rss_peak_extra_mb"] <= 300 and six_largest["rss_peak_extra_mb"] <= 300,
        ),
        (
            "... and the process returns within 50 MB of its baseline",
            six["rss_after_extra_mb"] <= 50 and six_largest["rss_after_extra_mb"] <= 50,
        ),
        (
            "V2 requests of 100 images: answered within the 10 s deadline",
            all(c["latency_ms_max"] < 10_000 for n, c in cases.items() if n.startswith("V2")),
        ),
        ("hung-up request logged as 499, not 200", hung_up_status == 499),
        ("hung-up request: < 1 s of CPU after the hang-up", cpu_after_hang_up < 1.0),
    ]
    result = {
        "cases": cases,
        "hang_up_cpu_s": cpu_after_hang_up,
        "hang_up_logged_status": hung_up_status,
    }
    return report(result, checks, args.out / "image_cost.json")


if __name__ == "__main__":
    sys.exit(main())
