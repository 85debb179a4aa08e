"""Every decision about a model's inputs is made per version, on every protocol (issue 11).

`mixed` has two versions that take different inputs: version 1 is the tiny iris model (4 named
features), version 2 the tiny binary MLP (20 numbers). V1 and V2, versioned and unversioned,
must decode each request with the version that serves it, also when the newest version failed
to load (then the unversioned calls are served by version 1).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_error, running_app

IRIS_NAMED = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
IRIS_LIST = [5.1, 3.5, 1.4, 0.2]
TWENTY = [0.1 * i for i in range(20)]


def _copy_version(source: Path, target: Path, name: str, version: int) -> None:
    shutil.copytree(source, target)
    card_path = target / "card.json"
    card = json.loads(card_path.read_text())
    card["name"], card["version"] = name, version
    card_path.write_text(json.dumps(card))


def _mixed_models(root: Path, tiny_models_dir: Path, *, break_newest: bool) -> Path:
    models = root / "models"
    _copy_version(tiny_models_dir / "iris-knn" / "1", models / "mixed" / "1", "mixed", 1)
    _copy_version(tiny_models_dir / "binary-mlp" / "1", models / "mixed" / "2", "mixed", 2)
    if break_newest:
        card = json.loads((models / "mixed" / "2" / "card.json").read_text())
        model_file = models / "mixed" / "2" / card["model_file"]
        model_file.write_bytes(model_file.read_bytes() + b"tampered")
    return models


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path) -> Iterator[Any]:
    """Both versions ready."""
    models = _mixed_models(tmp_path_factory.mktemp("mixed"), tiny_models_dir, break_newest=False)
    with running_app(models, max_versions_per_model=2) as client:
        yield client


@pytest.fixture(scope="module")
def newest_failed(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path) -> Iterator[Any]:
    """Version 2 fails its hash check; version 1 serves."""
    models = _mixed_models(tmp_path_factory.mktemp("broken"), tiny_models_dir, break_newest=True)
    with running_app(models, expect_ready=False, max_versions_per_model=2) as client:
        yield client


def _v1(client: Any, version: int | None, instances: list[Any]) -> Any:
    path = "/v1/models/mixed" + (f"/versions/{version}" if version else "") + ":predict"
    return client.post(path, json={"instances": instances})


def _v2(client: Any, version: int | None, row: list[float]) -> Any:
    path = "/v2/models/mixed" + (f"/versions/{version}" if version else "") + "/infer"
    tensor = {"name": "features", "datatype": "FP32", "shape": [1, len(row)], "data": [row]}
    return client.post(path, json={"inputs": [tensor]})


def _served_by(response: Any, version: int) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("version", body.get("model_version")) in (version, str(version)), body


def test_v1_decodes_with_the_version_asked_for(mixed: Any) -> None:
    _served_by(_v1(mixed, 1, [IRIS_NAMED]), 1)
    _served_by(_v1(mixed, 1, [IRIS_LIST]), 1)
    assert_error(_v1(mixed, 1, [TWENTY]), 422, "4 features")
    _served_by(_v1(mixed, 2, [TWENTY]), 2)
    assert_error(_v1(mixed, 2, [IRIS_NAMED]), 422, "20")
    # Unversioned: the newest version, with its inputs.
    _served_by(_v1(mixed, None, [TWENTY]), 2)
    assert_error(_v1(mixed, None, [IRIS_NAMED]), 422)


def test_v1_labels_are_the_serving_versions(mixed: Any) -> None:
    iris = _v1(mixed, 1, [IRIS_NAMED]).json()["predictions"][0]
    assert set(iris["probabilities"]) == {"setosa", "versicolor", "virginica"}
    binary = _v1(mixed, 2, [TWENTY]).json()["predictions"][0]
    assert set(binary["probabilities"]) == {"0", "1"}


def test_v2_decodes_with_the_version_asked_for(mixed: Any) -> None:
    _served_by(_v2(mixed, 1, IRIS_LIST), 1)
    assert_error(_v2(mixed, 1, TWENTY), 400, "shape [N, 4]")
    _served_by(_v2(mixed, 2, TWENTY), 2)
    assert_error(_v2(mixed, 2, IRIS_LIST), 400, "shape [N, 20]")
    _served_by(_v2(mixed, None, TWENTY), 2)
    assert_error(_v2(mixed, None, IRIS_LIST), 400, "shape [N, 20]")
    shapes = {
        version: mixed.get(f"/v2/models/mixed/versions/{version}").json()["inputs"][0]["shape"]
        for version in (1, 2)
    }
    assert shapes == {1: [-1, 4], 2: [-1, 20]}


def test_when_the_newest_version_failed_both_protocols_serve_the_previous_one(
    newest_failed: Any,
) -> None:
    states = {m["version"]: m["state"] for m in newest_failed.get("/health/ready").json()["models"]}
    assert states == {1: "ready", 2: "failed"}
    # The same instance, unversioned, on both protocols: version 1 serves it.
    _served_by(_v1(newest_failed, None, [IRIS_NAMED]), 1)
    _served_by(_v1(newest_failed, None, [IRIS_LIST]), 1)
    _served_by(_v2(newest_failed, None, IRIS_LIST), 1)
    assert_error(_v1(newest_failed, None, [TWENTY]), 422, "4 features")
    assert_error(_v2(newest_failed, None, TWENTY), 400, "shape [N, 4]")
    # Versioned: 1 serves, 2 says why it cannot.
    _served_by(_v1(newest_failed, 1, [IRIS_NAMED]), 1)
    _served_by(_v2(newest_failed, 1, IRIS_LIST), 1)
    assert_error(_v1(newest_failed, 2, [TWENTY]), 503, "failed to load")
    assert_error(_v2(newest_failed, 2, TWENTY), 503, "failed to load")


def test_readiness_names_a_failed_version_even_when_the_replica_is_ready(
    newest_failed: Any,
) -> None:
    ready = newest_failed.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    [failure] = body["failed"]
    assert (failure["name"], failure["version"]) == ("mixed", 2)
    assert failure["reason"]  # the same reason GET /v1/models gives
    # The model's own readiness: it serves (version 1), but a version failed: 503 "degraded".
    model = newest_failed.get("/health/ready/mixed")
    assert model.status_code == 503
    assert model.json()["status"] == "degraded"
    assert model.json()["serving"] is True
    assert model.json()["failed"] == [failure]
    assert {v["version"]: v["state"] for v in model.json()["versions"]} == {
        1: "ready",
        2: "failed",
    }
    assert newest_failed.get("/health/ready/no-such-model").status_code == 404


def test_a_model_whose_versions_all_serve_is_ready(mixed: Any) -> None:
    model = mixed.get("/health/ready/mixed")
    assert model.status_code == 200, model.text
    assert model.json()["status"] == "ready"
    assert model.json()["failed"] == []
    assert mixed.get("/health/ready").json()["failed"] == []
