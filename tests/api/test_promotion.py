"""From shadow and canary to a decision: a worse candidate is rolled back by the rules, an
equal one promoted, too little feedback decides nothing; a decision by hand is recorded and
survives a restart; feedback counts for the primary only."""

from __future__ import annotations

import functools
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from app.repository.config import parse_config
from tests.candidates import add_version
from tests.conftest import assert_error, running_app
from tests.polling import until

IRIS = load_iris()
LABELS = ["setosa", "versicolor", "virginica"]
FAST: dict[str, Any] = {"promotion_poll_s": 0.05, "store_flush_interval_ms": 20.0}


@pytest.fixture(scope="module")
def iris_models(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """iris-knn version 1, trained by the real trainer (the only model these tests need)."""
    from training.common import TrainOptions, train_and_save
    from training.iris_knn import train

    out = tmp_path_factory.mktemp("iris-models")
    train_and_save("iris-knn", train, out, TrainOptions(data_dir=data_dir, quiet=True), version=1)
    return out


@pytest.fixture
def models_copy(tmp_path: Path, iris_models: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(iris_models, target)
    return target


def _iris_only(models: Path) -> Path:
    return models


def _config(models: Path, config: dict[str, Any]) -> None:
    (models / "iris-knn" / "config.json").write_text(json.dumps(config))


_until = functools.partial(until, timeout_s=30.0)


def _predict_with_feedback(client: Any, index: int, **headers: str) -> int:
    """Predict Iris row `index` and send its true label; returns the version that answered."""
    response = client.post(
        "/v1/models/iris-knn:predict",
        json={"instances": [IRIS.data[index].round(2).tolist()]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    answer = client.post(
        "/v1/models/iris-knn:feedback",
        json={
            "request_id": response.headers["x-request-id"],
            "labels": [LABELS[int(IRIS.target[index])]],
        },
    )
    version: int = response.json()["version"]
    if answer.status_code == 503:  # the store's writer is behind: retry shortly
        _until(
            lambda: (
                client.post(
                    "/v1/models/iris-knn:feedback",
                    json={
                        "request_id": response.headers["x-request-id"],
                        "labels": [LABELS[int(IRIS.target[index])]],
                    },
                ).status_code
                == 200
            ),
            "feedback stored",
        )
        return version
    assert answer.status_code == 200, answer.text
    return version


def _decisions(client: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/models/iris-knn/decisions")
    assert response.status_code == 200, response.text
    decisions: list[dict[str, Any]] = response.json()["decisions"]
    return decisions


def _routed(client: Any, n: int = 10) -> set[int]:
    versions = set()
    for _ in range(n):
        response = client.post(
            "/v1/models/iris-knn:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}
        )
        versions.add(response.json()["version"])
    return versions


CANARY = {
    "labels": {"stable": 1, "canary": 2},
    "traffic": {"stable": 1, "canary": 1},
    "promotion": {"min_feedback_rows": 30, "max_accuracy_drop": 0.05},
}


def test_a_worse_canary_is_rolled_back_after_enough_feedback(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    add_version(models, 2, shuffled_share=0.4)
    _config(models, CANARY)
    with running_app(models, **FAST) as client:
        order = np.random.default_rng(0).permutation(len(IRIS.target))
        feedback = {1: 0, 2: 0}
        for step, index in enumerate(np.tile(order, 4)):
            if _decisions(client):
                break
            feedback[_predict_with_feedback(client, int(index))] += 1
            if step % 10 == 9:
                time.sleep(0.15)  # a poll or two
        else:
            raise AssertionError(f"no decision after {feedback} rows with feedback")
        decision = _decisions(client)[0]
        assert decision["action"] == "rollback", decision
        assert decision["decided_by"] == "rule"
        assert (decision["candidate"], decision["baseline"]) == (2, 1)
        assert "candidate worse" in decision["verdict"]
        assert decision["evidence"]["accuracy"]["candidate"]["rows"] >= 30
        # The canary's share is 0 now; asking for it by label still reaches it.
        assert _routed(client) == {1}
        again = client.post(
            "/v1/models/iris-knn/labels/canary:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}
        )
        assert again.json()["version"] == 2
        comparison = client.get("/v1/models/iris-knn/comparison").json()
        assert comparison["kind"] == "canary"
        assert comparison["decision"]["action"] == "rollback"
        accuracy = comparison["accuracy"]
        assert accuracy["candidate"]["accuracy"] < accuracy["baseline"]["accuracy"] - 0.1
        metric = [
            line
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("synergy_promotion_decisions_total{")
        ]
        assert metric == [
            'synergy_promotion_decisions_total{action="rollback",decided_by="rule",'
            'model="iris-knn"} 1.0'
        ]
        page = client.get("/v1/models/iris-knn/report").text
        section = page[page.index('<section id="comparison"') :]
        section = section[: section.index("</section>")]
        assert "Canary: candidate version 2 (canary) against version 1 (stable)" in section
        assert "decision in force: <strong>rollback</strong> (rule)" in section
        assert section.count("<svg") == 1  # the accuracy intervals
        assert "Input drift of each version" in section and "<h3>Decisions</h3>" in section
        # The figure for the report: rows with feedback when it was rolled back.
        print(f"\nrolled back after {feedback} rows with feedback (by version)")


SHADOW = {
    "labels": {"stable": 1, "canary": 2},
    "traffic": {"stable": 1},
    "shadow": "canary",
    "promotion": {"min_feedback_rows": 30, "max_accuracy_drop": 0.05, "min_agreement": 0.9},
}


def test_an_equal_shadow_is_promoted_and_feedback_counts_for_the_primary_only(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    add_version(models, 2)
    _config(models, SHADOW)
    with running_app(models, **FAST) as client:
        # Judged at 30 and at 60 rows with feedback (the looks double): 30 identical rows
        # do not yet bound the loss within 0.05 at the first look's 2.5% level; 60 do.
        for index in range(75):
            if _decisions(client):
                break
            assert _predict_with_feedback(client, index * 2) == 1
            if index % 10 == 9:
                time.sleep(0.15)
        _until(lambda: _decisions(client), "a decision")
        decision = _decisions(client)[0]
        assert decision["action"] == "promote" and decision["decided_by"] == "rule"
        evidence = decision["evidence"]
        assert evidence["kind"] == "shadow"
        assert evidence["agreement"]["rate"] == 1.0
        assert evidence["accuracy"]["feedback_rows"] >= 30
        assert evidence["accuracy"]["mcnemar"]["p_value"] == 1.0
        # The stable label names version 2 now, and the unversioned traffic follows it.
        _until(lambda: _routed(client) == {2}, "traffic on version 2")
        listing = client.get("/v1/models").json()
        iris = next(m for m in listing["models"] if m["name"] == "iris-knn")
        assert iris["version_labels"]["stable"] == 2 and "shadow" not in iris
        page = client.get("/v1/models/iris-knn/versions/1/report").text
        section = page[page.index('<section id="comparison"') :]
        section = section[: section.index("</section>")]
        assert "Shadow: candidate version 2 (canary) against version 1" in section
        assert section.count("<svg") == 2  # accuracy intervals, the label matrix
        assert "Agreement: 1.000" in section
        # Feedback was stored on the primary's rows only.
        monitoring = client.get("/v1/models/iris-knn/monitoring").json()["versions"]
        with_feedback = {v["version"]: v["rows_with_feedback"] for v in monitoring}
        assert with_feedback[1] >= 30 and with_feedback[2] == 0


def test_too_little_feedback_decides_nothing(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    add_version(models, 2, shuffled_share=0.4)
    _config(models, {**CANARY, "promotion": {"min_feedback_rows": 1000}})
    with running_app(models, **FAST) as client:
        for index in range(40):
            _predict_with_feedback(client, index)

        def judged() -> dict[str, Any] | None:
            # The poll judges what the comparison shows: all 40 rows with feedback counted.
            body: dict[str, Any] = client.get("/v1/models/iris-knn/comparison").json()
            accuracy = body["accuracy"]
            rows = accuracy["candidate"]["rows"] + accuracy["baseline"]["rows"]
            return body if rows >= 39 else None

        comparison = _until(judged, "the feedback counted")
        assert _decisions(client) == []
        assert comparison["verdict"]["action"] == "wait"
        assert comparison["verdict"]["text"].startswith("not enough data yet")
        accuracy = comparison["accuracy"]
        # The split alternates; the baseline's rows count from the canary's first row on.
        assert accuracy["candidate"]["rows"] == 20 and accuracy["baseline"]["rows"] in (19, 20)
        assert _routed(client, 20) == {1, 2}


def test_a_decision_by_hand_is_recorded_and_survives_a_restart(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    add_version(models, 2)
    _config(models, {**CANARY, "promotion": {"auto": False}})
    store = Path(tempfile.mkdtemp(prefix="synergy-store-"))
    with running_app(models, store_dir=store, **FAST) as client:
        # Model control: off unless the operator turns it on (docs/security.md).
        assert_error(
            client.post("/v1/models/iris-knn/decisions", json={"action": "rollback"}),
            403,
            "model-control API is off",
        )
    with running_app(models, store_dir=store, control_api=True, **FAST) as client:
        assert_error(
            client.post("/v1/models/iris-knn/decisions", json={"action": "drop"}), 422, "action"
        )
        assert_error(
            client.post(
                "/v1/models/iris-knn/decisions", json={"action": "promote", "candidate": "7"}
            ),
            404,
            "no version 7",
        )
        made = client.post(
            "/v1/models/iris-knn/decisions",
            json={"action": "rollback", "reason": "customer complaints about version 2"},
        )
        assert made.status_code == 200, made.text
        assert made.json()["decided_by"] == "manual" and made.json()["candidate"] == 2
        assert _routed(client) == {1}
    with running_app(models, store_dir=store, control_api=True, **FAST) as client:
        decisions = _decisions(client)
        assert [d["action"] for d in decisions] == ["rollback"]
        assert decisions[0]["verdict"] == "customer complaints about version 2"
        assert _routed(client) == {1}
        # Undo: a reset puts config.json's split back.
        reset = client.post("/v1/models/iris-knn/decisions", json={"action": "reset"})
        assert reset.status_code == 200, reset.text
        assert _routed(client, 20) == {1, 2}


def test_comparison_needs_a_candidate(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    with running_app(models, **FAST) as client:
        nothing = client.get("/v1/models/iris-knn/comparison")
        assert nothing.status_code == 200, nothing.text
        assert nothing.json()["kind"] is None and nothing.json()["verdict"]["action"] == "none"
        assert "no shadow or canary" in nothing.json()["verdict"]["text"]
        assert_error(client.get("/v1/models/iris-knn/comparison?candidate=9"), 404, "no version 9")
        assert_error(client.get("/v1/models/nope/comparison"), 404, "unknown model")


DOCS = Path(__file__).resolve().parents[2] / "docs" / "promotion.md"


def _blocks(language: str) -> list[str]:
    text = DOCS.read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_docs_page_examples_work(models_copy: Path) -> None:
    """docs/promotion.md: its config is valid, and every curl command answers 200 here."""
    (config_text,) = _blocks("json")
    config = parse_config(config_text.encode())
    assert config.promotion is not None and config.promotion.min_feedback_rows == 200
    models = _iris_only(models_copy)
    add_version(models, 2)
    _config(models, CANARY)
    commands = [
        line
        for block in _blocks("bash")
        for line in block.replace("\\\n", " ").splitlines()
        if line.startswith("curl")
    ]
    assert len(commands) == 4
    with running_app(models, control_api=True, **FAST) as client:
        for command in commands:
            path = re.search(r"localhost:8000(\S+)", command)
            assert path is not None
            body = re.search(r"-d '([^']*)'", command)
            if "-X POST" in command:
                assert body is not None
                response = client.post(path.group(1), json=json.loads(body.group(1)))
            else:
                response = client.get(path.group(1))
            assert response.status_code == 200, (command, response.text)


def test_a_decision_by_hand_needs_an_admin_key_when_admin_keys_are_set(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    add_version(models, 2)
    _config(models, {**CANARY, "promotion": {"auto": False}})
    predictor = {"Authorization": "Bearer predict-key"}
    admin = {"Authorization": "Bearer admin-key"}
    body = {"action": "rollback", "reason": "by hand"}
    with running_app(
        models, api_keys=["predict-key"], admin_api_keys=["admin-key"], **FAST
    ) as client:
        assert_error(
            client.post("/v1/models/iris-knn/decisions", json=body, headers=predictor),
            403,
            "admin key",
        )
        assert (
            client.get("/v1/models/iris-knn/decisions", headers=predictor).json()["decisions"] == []
        )
        made = client.post("/v1/models/iris-knn/decisions", json=body, headers=admin)
        assert made.status_code == 200, made.text
        listed = client.get("/v1/models/iris-knn/decisions", headers=predictor)
        assert [d["action"] for d in listed.json()["decisions"]] == ["rollback"]
