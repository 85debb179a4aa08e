"""A real server whose stdout is a pipe that nobody reads (a stalled log collector): it keeps
answering, and every line reaches the pipe once it is read again."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import httpx

from tests.conftest import COMMITTED_MODELS
from tests.e2e.conftest import start_server_with_output

# Access lines are ~250 bytes: 1,000 of them are four times what a Linux pipe buffers (64 KiB),
# and far less than the server queues for a stalled reader (8 MiB) before dropping lines.
REQUESTS = 1000


def test_a_stdout_nobody_reads_does_not_stop_the_server(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS / "iris-knn", models / "iris-knn")
    server = start_server_with_output(
        subprocess.PIPE,  # and never read until the end
        tmp_path / "server.log",
        models,
        env={"SYNERGY_GRPC_PORT": "0", "SYNERGY_LOG_FORMAT": "json"},
    )
    process, url = server.process, server.url
    try:
        body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(REQUESTS):
                response = client.post("/v1/models/iris-knn:predict", json=body)
                assert response.status_code == 200, response.text
            assert client.get("/health/ready").status_code == 200
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)  # the reader is back
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    lines = [json.loads(line) for line in output.splitlines() if line.startswith(b"{")]
    answered = [line for line in lines if line.get("path") == "/v1/models/iris-knn:predict"]
    assert len(answered) == REQUESTS  # every line kept: the queue never reached its bound
    assert not [line for line in lines if "dropped" in line["msg"]]
