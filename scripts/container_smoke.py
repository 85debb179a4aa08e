"""Run the image that `container-check.sh` built and use it as a client would.

Starts the container with podman (the runtime settings container-check found to work on this
host), waits for /health/ready, sends one prediction per model (the card's real held-out
examples: every label must come back right) plus a V2 infer, checks the HEALTHCHECK user and
the image size, then stops it with SIGTERM and checks the drain ended with exit code 0.

Usage: python scripts/container_smoke.py [PROJECT_DIR]   (after container-check.sh passed)
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

STATE_DIR = Path("/var/tmp/container-check")
CONTAINER = "synergy-serve-smoke"


def podman_command() -> tuple[list[str], list[str]]:
    """podman with the runtime and ulimits container-check probed on this host."""
    command = ["podman", "--cgroup-manager=cgroupfs", "--events-backend=file"]
    settings = dict(
        line.split("=", 1)
        for line in (STATE_DIR / "runtime.env").read_text().splitlines()
        if "=" in line
    )
    return [*command, "--runtime", settings["RUNTIME"]], [
        "--ulimit",
        f"nofile={settings['NOFILE']}:{settings['NOFILE']}",
        "--ulimit",
        f"nproc={settings['NPROC']}:{settings['NPROC']}",
    ]


def image_name(project: Path) -> str:
    """The tag container-check.sh gives the project's image."""
    slug = re.sub(r"[^a-z0-9_.-]", "-", project.name.lower()).lstrip("-.").rstrip("-") or "project"
    digest = hashlib.sha256(f"{project}:{project / 'Dockerfile'}".encode()).hexdigest()[:8]
    return f"localhost/container-check/{slug}-{digest}:latest"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    project = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    podman, ulimits = podman_command()
    image = image_name(project)
    size = int(
        subprocess.check_output([*podman, "image", "inspect", "--format", "{{.Size}}", image])
    )
    user = subprocess.check_output(
        [*podman, "image", "inspect", "--format", "{{.Config.User}}", image], text=True
    ).strip()
    print(f"image {image}: {size / 1e6:.0f} MB, USER {user}")
    assert user and not user.startswith(("0", "root")), "the image must not run as root"

    subprocess.run([*podman, "rm", "-f", "-t", "2", CONTAINER], capture_output=True)
    port = free_port()
    started = time.monotonic()
    run = [*podman, "run", "-d", "--name", CONTAINER, *ulimits]
    result = subprocess.run(
        [*run, "-p", f"127.0.0.1:{port}:8000", image], capture_output=True, text=True
    )
    if result.returncode != 0:  # no bridge networking here: host network on a free port
        subprocess.run([*podman, "rm", "-f", "-t", "2", CONTAINER], capture_output=True)
        subprocess.run(
            [
                *run,
                "--network",
                "host",
                "-e",
                f"SYNERGY_PORT={port}",
                "-e",
                "SYNERGY_GRPC_PORT=0",
                image,
            ],
            check=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the container did not become ready in 180 s")
            time.sleep(0.5)
        print(f"ready {time.monotonic() - started:.1f} s after `podman run`")

        for name in httpx.get(f"{url}/v1/models", timeout=5).json()["models"]:
            model = name["name"]
            card = httpx.get(f"{url}/v1/models/{model}", timeout=5).json()["card"]
            examples = card["examples"]
            response = httpx.post(
                f"{url}/v1/models/{model}:predict",
                json={"instances": [e["instance"] for e in examples]},
                timeout=30,
            )
            response.raise_for_status()
            labels = [p["label"] for p in response.json()["predictions"]]
            expected = [e["label"] for e in examples]
            assert labels == expected, (model, labels, expected)
            print(f"{model}: {len(labels)} held-out examples predicted right: {labels}")

        v2 = httpx.post(
            f"{url}/v2/models/imdb-sentiment/infer",
            json={
                "id": "smoke",
                "inputs": [
                    {
                        "name": "text",
                        "datatype": "BYTES",
                        "shape": [1],
                        "data": ["A moving, beautifully acted film."],
                    }
                ],
            },
            timeout=10,
        )
        v2.raise_for_status()
        print("v2 infer:", json.dumps(v2.json()["outputs"][0]))
    finally:
        subprocess.run([*podman, "stop", "-t", "40", CONTAINER], capture_output=True)
        code = subprocess.check_output(
            [*podman, "inspect", "--format", "{{.State.ExitCode}}", CONTAINER], text=True
        ).strip()
        logs = subprocess.run([*podman, "logs", CONTAINER], capture_output=True, text=True)
        subprocess.run([*podman, "rm", "-f", "-t", "2", CONTAINER], capture_output=True)
    print(f"SIGTERM -> exit code {code}")
    if code != "0":
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        return 1
    print("PASS container smoke")
    return 0


if __name__ == "__main__":
    sys.exit(main())
