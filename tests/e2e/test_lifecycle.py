"""A new version rolls out live under load: a real training run writes it, the polling
server loads it, switches to it and retires the old one, and no request fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION, ROOT
from tests.e2e.conftest import start_server

MODELS = ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment")
CONCURRENCY = 16


def _bodies() -> dict[str, dict[str, Any]]:
    bodies = {}
    for name in MODELS:
        card = json.loads((COMMITTED_MODELS / name / COMMITTED_VERSION / "card.json").read_text())
        bodies[name] = {"instances": [card["examples"][0]["instance"]]}
    return bodies


def _index(url: str) -> list[dict[str, Any]]:
    index: list[dict[str, Any]] = httpx.post(f"{url}/v2/repository/index", timeout=10).json()
    return index


def test_a_new_version_rolls_out_under_load_without_a_failed_request(
    tmp_path: Path, data_dir: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS, models)
    # Serve one version of iris-knn: the new one replaces the old.
    (models / "iris-knn" / "config.json").write_text('{"version_policy": {"latest": 1}}')
    server = start_server(tmp_path / "server.log", models, SYNERGY_MODEL_POLL_S="0.5")
    bodies = _bodies()
    outcomes: Counter[str] = Counter()
    iris_versions: list[int] = []
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            turn = worker
            while not stop.is_set():
                name = MODELS[turn % len(MODELS)]
                turn += 1
                try:
                    response = http.post(f"/v1/models/{name}:predict", json=bodies[name])
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{name}: {type(exc).__name__}")
                    continue
                with lock:
                    outcomes[f"{name} {response.status_code}"] += 1
                    if response.status_code != 200:
                        failures.append(f"{name}: {response.status_code} {response.text[:200]}")
                    elif name == "iris-knn":
                        iris_versions.append(response.json()["version"])

    workers = [threading.Thread(target=client, args=(i,)) for i in range(CONCURRENCY)]
    try:
        for worker in workers:
            worker.start()
        time.sleep(2)
        training = subprocess.run(
            [
                sys.executable,
                "-m",
                "training",
                "iris-knn",
                "--out",
                str(models),
                "--data-dir",
                str(data_dir),
                "--version",
                "3",
                "--quiet",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert training.returncode == 0, training.stderr[-2000:]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            iris = [
                (m["version"], m["state"]) for m in _index(server.url) if m["name"] == "iris-knn"
            ]
            if iris == [("3", "READY")]:
                break
            time.sleep(0.25)
        else:
            raise AssertionError(f"version 3 did not replace version 2: {_index(server.url)}")
        time.sleep(2)  # load on the new version alone
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        log = server.log.read_text()
        server.stop()
    assert not failures, (failures[:5], outcomes)
    assert all(outcomes[f"{name} 200"] > 20 for name in MODELS), outcomes
    assert iris_versions[0] == 2 and iris_versions[-1] == 3
    # Loaded, warmed up and replayed before it took traffic; the old one retired after.
    assert log.index("model iris-knn version 3 ready") < log.index(
        "model iris-knn version 2: no longer selected"
    )
    assert "model iris-knn version 2 unloaded" in log
