"""Promotion on real server processes: two replicas sharing a real PostgreSQL reach the same
decision and the same routing (one decides, the other follows within a poll interval)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from tests.candidates import IRIS, add_version
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION
from tests.e2e.conftest import Server, start_server
from tests.e2e.test_monitoring import Postgres, postgres  # noqa: F401 - the fixture

LABELS = ["setosa", "versicolor", "virginica"]
POLL_S = 0.2


def _models(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(COMMITTED_MODELS / "iris-knn", models / "iris-knn")
    base = int(COMMITTED_VERSION)
    add_version(models, base + 1, shuffled_share=0.4, source_version=base)
    (models / "iris-knn" / "config.json").write_text(
        json.dumps(
            {
                "labels": {"stable": base, "canary": base + 1},
                "traffic": {"stable": 1, "canary": 1},
                "promotion": {"min_feedback_rows": 30, "max_accuracy_drop": 0.05},
            }
        )
    )
    return models


def _predict_with_feedback(server: Server, index: int) -> None:
    # A routing key per request: the split by its hash (the round robin restarts whenever a
    # scan rebuilds the router, every SYNERGY_MODEL_POLL_S, and would favour one target at
    # this test's request rate).
    response = httpx.post(
        f"{server.url}/v1/models/iris-knn:predict",
        json={"instances": [IRIS.data[index].round(2).tolist()]},
        headers={"X-Routing-Key": f"user-{index}-{time.monotonic_ns()}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    answer = httpx.post(
        f"{server.url}/v1/models/iris-knn:feedback",
        json={
            "request_id": response.headers["x-request-id"],
            "labels": [LABELS[int(IRIS.target[index])]],
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


def _decisions(server: Server) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/v1/models/iris-knn/decisions", timeout=30)
    assert response.status_code == 200, response.text
    decisions: list[dict[str, Any]] = response.json()["decisions"]
    return decisions


def _routed(server: Server, n: int = 10) -> set[int]:
    return {
        httpx.post(
            f"{server.url}/v1/models/iris-knn:predict",
            json={"instances": [[5.1, 3.5, 1.4, 0.2]]},
            timeout=30,
        ).json()["version"]
        for _ in range(n)
    }


def _rules(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/models/iris-knn/comparison", timeout=30)
    assert response.status_code == 200, response.text
    rules: dict[str, Any] = response.json()["rules"]
    return rules


def _decided_here(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("synergy_promotion_decisions_total{")
    )


def test_two_replicas_on_postgresql_reach_the_same_decision(
    tmp_path: Path,
    postgres: Postgres,  # noqa: F811 - the fixture
) -> None:
    models = _models(tmp_path)
    env = {
        "SYNERGY_DATABASE_URL": postgres.url,
        "SYNERGY_STORE_FLUSH_INTERVAL_MS": "100",
        "SYNERGY_PROMOTION_POLL_S": str(POLL_S),
        "SYNERGY_MODEL_POLL_S": "0.5",
        "SYNERGY_CONTROL_API": "true",  # the decision by hand below
    }
    replicas = [start_server(tmp_path / f"{name}.log", models, **env) for name in ("a", "b")]
    try:
        base = int(COMMITTED_VERSION)
        assert _routed(replicas[0]) == {base, base + 1}
        for step in range(600):
            if step % 10 == 0 and _decisions(replicas[0]):
                break
            _predict_with_feedback(replicas[step % 2], step % len(IRIS.target))
        decisions = _decisions(replicas[0])
        assert len(decisions) == 1, decisions
        decision = decisions[0]
        assert decision["action"] == "rollback" and decision["decided_by"] == "rule"
        assert decision["candidate"] == base + 1
        # The other replica follows within a poll interval (and decided nothing itself).
        deadline = time.monotonic() + 10 * POLL_S + 5
        while any(_routed(r) != {base} for r in replicas):
            assert time.monotonic() < deadline, "a replica still routes to the candidate"
            time.sleep(POLL_S)
        assert _decisions(replicas[1]) == decisions
        assert sum(_decided_here(r) for r in replicas) == 1
        # A decision by hand on B (undo: reset) is followed by A. Automatic decisions resume
        # after a reset and the evidence has not changed, so the operator first turns them
        # off (docs/promotion.md: keep a candidate serving after undoing a decision).
        (models / "iris-knn" / "config.json").write_text(
            json.dumps(
                {
                    "labels": {"stable": base, "canary": base + 1},
                    "traffic": {"stable": 1, "canary": 1},
                    "promotion": {"auto": False},
                }
            )
        )
        # Both replicas rescan config.json every 0.5 s: wait until each shows the new rules.
        deadline = time.monotonic() + 30
        while not all(_rules(r)["auto"] is False for r in replicas):
            assert time.monotonic() < deadline, "the new config.json was not applied"
            time.sleep(POLL_S)
        reset = httpx.post(
            f"{replicas[1].url}/v1/models/iris-knn/decisions",
            json={"action": "reset", "reason": "retrying the canary"},
            timeout=30,
        )
        assert reset.status_code == 200, reset.text
        deadline = time.monotonic() + 10 * POLL_S + 5
        while _routed(replicas[0], 20) != {base, base + 1}:
            assert time.monotonic() < deadline, "replica A did not follow the reset"
            time.sleep(POLL_S)
        # The operator turns the candidate into a shadow: the paired comparison reads the
        # shadow's answers that both replicas stored, joined with their feedback.
        (models / "iris-knn" / "config.json").write_text(
            json.dumps(
                {
                    "labels": {"stable": base, "canary": base + 1},
                    "traffic": {"stable": 1},
                    "shadow": "canary",
                    "promotion": {"auto": False},
                }
            )
        )
        deadline = time.monotonic() + 30
        while any(_routed(r) != {base} for r in replicas):
            assert time.monotonic() < deadline, "the new config.json was not applied"
            time.sleep(POLL_S)
        for step in range(20):
            _predict_with_feedback(replicas[step % 2], step * 7)

        def paired_rows() -> int:
            response = httpx.get(f"{replicas[0].url}/v1/models/iris-knn/comparison", timeout=30)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["kind"] == "shadow"
            rows: int = body["accuracy"]["feedback_rows"]
            return rows

        deadline = time.monotonic() + 10 * POLL_S + 10
        while paired_rows() < 20:
            assert time.monotonic() < deadline, "the shadow's rows did not reach the store"
            time.sleep(POLL_S)
    finally:
        for replica in replicas:
            replica.stop()
