"""The service as a real process on the committed models, over real HTTP."""

from __future__ import annotations

import io
import json
import re
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.adapters import bound_probabilities
from app.adapters.base import DEFAULT_PROBABILITY_FLOOR as PROBABILITY_FLOOR
from app.schemas.card import ModelCard
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION, MODEL_NAMES
from tests.e2e.conftest import Server, start_server


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_predicts_its_held_out_examples(server: Server, name: str) -> None:
    card = ModelCard.read(COMMITTED_MODELS / name / COMMITTED_VERSION)
    response = httpx.post(
        f"{server.url}/v1/models/{name}:predict",
        timeout=10,
        json={"instances": [e.instance for e in card.examples]},
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == [e.label for e in card.examples]
    # The server runs Keras on JAX; the card's probabilities were computed on TensorFlow
    # right after training: the same .keras file gives the same answer on both backends.
    served = [list(p["probabilities"].values()) for p in predictions]
    floor = card.out_of_domain.probability_floor if card.out_of_domain else PROBABILITY_FLOOR
    expected = bound_probabilities(np.array([e.probabilities or [] for e in card.examples]), floor)
    np.testing.assert_allclose(served, expected, atol=1e-4)


def test_png_uploads_of_real_test_digits(server: Server, data_dir: Path) -> None:
    with np.load(data_dir / "mnist.npz") as data:
        images, labels = data["x_test"][-30:], data["y_test"][-30:]  # not the card's examples
    correct = 0
    for image, label in zip(images, labels, strict=True):
        # As a phone scan would come: dark ink on white paper, 8x larger.
        picture = Image.fromarray(255 - image).resize((224, 224), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        response = httpx.post(
            f"{server.url}/v1/models/mnist-cnn:predict-image",
            timeout=10,
            files={"file": ("digit.png", buffer.getvalue(), "image/png")},
        )
        assert response.status_code == 200, response.text
        correct += response.json()["predictions"][0]["label"] == str(label)
    assert correct >= 28, f"{correct}/30 uploaded digits read correctly"


def test_server_reports_its_device_and_logs_json(server: Server) -> None:
    """Not a terminal: JSON lines; one line says it is ready with the models and /docs;
    requests are logged, health probes only counted in /metrics."""
    ready = httpx.get(f"{server.url}/health/ready").json()
    assert all("jax" in m["device"] or m["name"] == "iris-knn" for m in ready["models"])
    httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "e2e-probe"})
    httpx.get(f"{server.url}/v1/models", headers={"X-Request-ID": "e2e-log-check"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # access lines are flushed every 100 ms
        lines = [
            json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")
        ]
        access = [line for line in lines if line.get("request_id") == "e2e-log-check"]
        if access:
            break
        time.sleep(0.1)
    assert access and access[0]["status"] == 200 and access[0]["path"] == "/v1/models"
    assert {"ts", "level", "latency_ms", "method"} <= set(access[0])
    assert not [line for line in lines if line.get("request_id") == "e2e-probe"]
    probes = httpx.get(f"{server.url}/metrics").text
    assert re.search(r'synergy_requests_total\{[^}]*endpoint="live"[^}]*\} [1-9]', probes)
    [announced] = [line for line in lines if line.get("event") == "ready"]
    assert announced["msg"].startswith("ready: 4 models (binary-mlp v")
    assert f"{server.url}/docs" in announced["msg"] and announced["docs_url"] == (
        f"{server.url}/docs"
    )


def test_sigterm_exits_cleanly(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server.log")
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0


def test_container_healthcheck_command(server: Server) -> None:
    """The image's HEALTHCHECK (`python -m app.healthcheck`): 0 when ready, 1 when nothing
    answers."""
    import subprocess
    import sys

    from tests.e2e.conftest import free_port

    def healthcheck(port: str) -> int:
        env = {"SYNERGY_PORT": port, "PATH": "/usr/bin:/bin"}
        command = [sys.executable, "-m", "app.healthcheck"]
        return subprocess.run(command, env=env, cwd=COMMITTED_MODELS.parent, check=False).returncode

    assert healthcheck(server.url.rsplit(":", 1)[1]) == 0
    assert healthcheck(str(free_port())) == 1
