"""The live repository: versions appear, fail, are retired and unloaded without a restart;
config.json sets the version policy, labels, traffic and shadow; Triton's repository API."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import assert_error, running_app
from tests.polling import until

IRIS = [5.1, 3.5, 1.4, 0.2]
POLL_S = 0.1


def _iris_only(models: Path) -> Path:
    for folder in models.iterdir():
        if folder.name != "iris-knn":
            shutil.rmtree(folder)
    return models


def _publish(models: Path, version: int, edit: Callable[[Path], None] | None = None) -> Path:
    """Copy iris-knn version 1 in as `version` the atomic way (a dot-folder, then rename)."""
    staging = models / "iris-knn" / f".{version}.tmp"
    shutil.copytree(models / "iris-knn" / "1", staging)
    card = json.loads((staging / "card.json").read_text())
    card["version"] = version
    (staging / "card.json").write_text(json.dumps(card))
    if edit is not None:
        edit(staging)
    target = models / "iris-knn" / str(version)
    staging.rename(target)
    return target


def _config(models: Path, config: dict[str, Any]) -> None:
    path = models / "iris-knn" / "config.json"
    staging = path.with_name(".config.json.tmp")
    staging.write_text(json.dumps(config))
    staging.rename(path)


def _iris(client: Any) -> dict[str, Any]:
    listing: dict[str, Any] = client.get("/v1/models").json()
    return next(m for m in listing["models"] if m["name"] == "iris-knn")


def _states(client: Any) -> dict[int, str]:
    return {v["version"]: v["state"] for v in _iris(client)["versions"]}


def _predict(client: Any, path: str = "iris-knn", **kwargs: Any) -> Any:
    return client.post(f"/v1/models/{path}:predict", json={"instances": [IRIS]}, **kwargs)


def _version(response: Any) -> int:
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


def _metric(client: Any, prefix: str) -> list[str]:
    return [line for line in client.get("/metrics").text.splitlines() if line.startswith(prefix)]


def test_a_new_version_is_picked_up_then_the_old_one_retired(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    with running_app(models, model_poll_s=POLL_S, max_versions_per_model=1) as client:
        assert _version(_predict(client)) == 1
        _publish(models, 2)
        until(lambda: _states(client) == {2: "ready"}, "version 2 serves, version 1 is gone")
        assert _version(_predict(client)) == 2
        assert_error(
            client.post("/v1/models/iris-knn/versions/1:predict", json={"instances": [IRIS]}),
            404,
            "served versions: 2",
        )
        assert client.get("/health/ready").status_code == 200
        ready = _metric(client, "synergy_model_ready{")
        assert ready == ['synergy_model_ready{model="iris-knn",version="2"} 1.0'], ready
        # The documents follow: V2 metadata lists the versions served now.
        assert client.get("/v2/models/iris-knn").json()["versions"] == ["2"]


def test_a_new_model_folder_is_served_and_a_removed_one_retired(
    models_copy: Path, tiny_models_dir: Path
) -> None:
    models = _iris_only(models_copy)
    with running_app(models, model_poll_s=POLL_S) as client:
        assert "/v1/models/binary-mlp:predict" not in client.get("/openapi.json").json()["paths"]
        shutil.copytree(tiny_models_dir / "binary-mlp", models / ".binary-mlp.tmp")
        (models / ".binary-mlp.tmp").rename(models / "binary-mlp")
        until(
            lambda: client.get("/v2/models/binary-mlp/ready").status_code == 200,
            "binary-mlp ready",
        )
        assert "/v1/models/binary-mlp:predict" in client.get("/openapi.json").json()["paths"]
        shutil.rmtree(models / "binary-mlp")
        until(lambda: client.get("/v2/models/binary-mlp").status_code == 404, "binary-mlp retired")
        assert "/v1/models/binary-mlp:predict" not in client.get("/openapi.json").json()["paths"]
        assert client.get("/health/ready").status_code == 200


def _corrupt_artifact(folder: Path) -> None:
    with (folder / "model.joblib").open("ab") as artifact:
        artifact.write(b"tampered")


def _skew_replay(folder: Path) -> None:
    card = json.loads((folder / "card.json").read_text())
    for example in card["examples"]:
        example["probabilities"] = list(reversed(example["probabilities"]))
    (folder / "card.json").write_text(json.dumps(card))


def test_a_broken_new_version_never_serves_and_the_previous_keeps_answering(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    with running_app(models, model_poll_s=POLL_S, max_versions_per_model=1) as client:
        for version, edit, reason in (
            (2, _corrupt_artifact, "artifact check failed"),
            (3, _skew_replay, "does not reproduce the probabilities"),
        ):
            _publish(models, version, edit)
            failed = until(
                lambda v=version: next(  # type: ignore[misc]
                    (
                        x
                        for x in _iris(client)["versions"]
                        if x["version"] == v and x["state"] == "failed"
                    ),
                    None,
                ),
                f"version {version} failed",
            )
            assert reason in failed["reason"]
            assert _version(_predict(client)) == 1
            assert client.get("/health/ready").status_code == 200
            failures = _metric(
                client, f'synergy_model_load_failures_total{{model="iris-knn",version="{version}"}}'
            )
            assert failures and failures[0].endswith(" 1.0"), failures
        # Fixed on disk (the same folder, its files changed): tried again, and it serves.
        shutil.rmtree(models / "iris-knn" / "3")
        _publish(models, 3)
        until(lambda: _states(client) == {3: "ready"}, "the fixed version 3 serves alone")
        assert _version(_predict(client)) == 3


def _unknown_framework(folder: Path) -> None:
    card = json.loads((folder / "card.json").read_text())
    card["framework"] = "onnx"  # a valid card: the runtimes table decides what serves
    (folder / "card.json").write_text(json.dumps(card))


def test_a_version_whose_framework_no_runtime_serves_fails_to_load_saying_so(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2, _unknown_framework)
    with running_app(models, max_versions_per_model=2) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200  # version 1 serves
        assert ready.json()["failed"] == [
            {
                "name": "iris-knn",
                "version": 2,
                "reason": "loading failed: no runtime serves framework 'onnx'; this server "
                "has: keras, sklearn",
            }
        ]
        assert _states(client) == {1: "ready", 2: "failed"}
        assert _version(_predict(client)) == 1


def test_labels_route_and_pin_requests_on_every_protocol(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2)
    _config(models, {"labels": {"stable": 1, "canary": 2}})
    with running_app(models, model_poll_s=0) as client:
        assert _version(_predict(client, "iris-knn/labels/stable")) == 1
        assert _version(_predict(client, "iris-knn/labels/canary")) == 2
        assert_error(_predict(client, "iris-knn/labels/beta"), 404, "labels: canary, stable")
        # Labels alone do not move traffic: unversioned requests go to the newest.
        assert _version(_predict(client)) == 2
        assert _version(_predict(client, headers={"X-Model-Label": "stable"})) == 1
        assert _version(_predict(client, headers={"X-Model-Version": "1"})) == 1
        assert_error(_predict(client, headers={"X-Model-Version": "one"}), 400, "X-Model-Version")
        v2 = client.post(
            "/v2/models/iris-knn/infer",
            json={
                "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": IRIS}]
            },
            headers={"X-Model-Label": "stable"},
        )
        assert v2.status_code == 200 and v2.json()["model_version"] == "1", v2.text
        image_free = client.post(
            "/v1/models/iris-knn:explain",
            json={"instances": [IRIS]},
            headers={"X-Model-Label": "stable"},
        )
        assert image_free.status_code == 200 and image_free.json()["version"] == 1
        listing = _iris(client)
        assert listing["version_labels"] == {"stable": 1, "canary": 2}
        detail = client.get("/v1/models/iris-knn").json()
        assert detail["serving"]["version_labels"] == {"stable": 1, "canary": 2}


def test_traffic_splits_by_weight_and_a_routing_key_is_sticky(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2)
    _config(
        models,
        {"labels": {"stable": 1, "canary": 2}, "traffic": {"stable": 75, "canary": 25}},
    )
    with running_app(models, model_poll_s=0) as client:
        served = Counter(_version(_predict(client)) for _ in range(40))
        assert served == {1: 30, 2: 10}, served
        for key in ("user-1", "user-2", "user-3", "user-4"):
            first = _version(_predict(client, headers={"X-Routing-Key": key}))
            assert all(
                _version(_predict(client, headers={"X-Routing-Key": key})) == first
                for _ in range(5)
            )
        keyed = Counter(
            _version(_predict(client, headers={"X-Routing-Key": f"user-{i}"})) for i in range(200)
        )
        assert 25 <= keyed[2] <= 75, keyed  # a quarter of the keys, give or take
        counted = [
            line
            for line in _metric(client, "synergy_requests_total{")
            if 'label="canary"' in line and 'version="2"' in line and 'model="iris-knn"' in line
        ]
        assert counted, "requests are counted by route label"


def test_a_shadow_gets_a_copy_and_never_answers(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2)
    _config(
        models,
        {"labels": {"stable": 1, "canary": 2}, "traffic": {"stable": 1}, "shadow": "canary"},
    )
    with running_app(models, model_poll_s=0) as client:
        for _ in range(12):
            assert _version(_predict(client)) == 1
        shadow_rows = until(
            lambda: [
                line
                for line in _metric(
                    client, 'synergy_shadow_rows_total{model="iris-knn",version="2"}'
                )
                if line.endswith(" 12.0")
            ],
            "12 shadow rows counted",
        )
        assert shadow_rows
        # The same model: the shadow agrees with the primary on every row.
        disagreements = _metric(
            client, 'synergy_shadow_disagreements_total{model="iris-knn",version="2"}'
        )
        assert disagreements == [
            'synergy_shadow_disagreements_total{model="iris-knn",version="2"} 0.0'
        ]
        # Requests that name a version are not copied.
        _predict(client, "iris-knn/versions/1")
        time.sleep(0.3)
        assert _metric(client, 'synergy_shadow_rows_total{model="iris-knn",version="2"}')[
            0
        ].endswith(" 12.0")


def test_an_invalid_config_names_the_field_and_leaves_the_previous_in_force(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2)
    _config(models, {"labels": {"stable": 1}})
    with running_app(models, model_poll_s=POLL_S) as client:
        assert _version(_predict(client, "iris-knn/labels/stable")) == 1
        for config, field in (
            ({"version_policy": {"latest": 0}}, "version_policy"),
            ({"labels": {"stable": 7}}, "labels.stable: version 7 is not served"),
            ({"labels": {"stable": 1}, "traffic": {"beta": 1}}, "traffic"),
            ({"labels": {"Stable!": 1}}, "labels"),
            ({"lables": {"stable": 1}}, "lables"),
        ):
            _config(models, config)
            error = until(lambda: _iris(client).get("config_error"), f"{config} refused")
            assert field in error and "config.json is invalid" in error, error
            assert _version(_predict(client, "iris-knn/labels/stable")) == 1
            assert client.get("/health/ready").status_code == 200
            assert _metric(client, 'synergy_model_config_valid{model="iris-knn"} 0.0')
            _config(models, {"labels": {"stable": 1}})
            until(lambda: "config_error" not in _iris(client), "the valid config is back")
        (models / "iris-knn" / "config.json").write_text("{not json")
        error = until(lambda: _iris(client).get("config_error"), "broken JSON refused")
        assert "config.json is invalid" in error and "/tmp" not in error


def test_a_version_policy_in_config_selects_the_versions(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    for version in (2, 3):
        _publish(models, version)
    _config(models, {"version_policy": {"specific": [1, 3]}})
    with running_app(models, model_poll_s=POLL_S) as client:
        assert _states(client) == {1: "ready", 3: "ready"}
        assert _iris(client)["version_policy"] == {"specific": [1, 3]}
        triton = client.get("/v2/models/iris-knn/config").json()["version_policy"]
        assert triton == {"specific": {"versions": [1, 3]}}
        _config(models, {"version_policy": {"all": True}})
        until(lambda: _states(client) == {1: "ready", 2: "ready", 3: "ready"}, "all versions")
        _config(models, {"version_policy": {"latest": 1}})
        until(lambda: _states(client) == {3: "ready"}, "the latest only")


def test_the_repository_api_lists_unloads_and_loads(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2, _corrupt_artifact)
    with running_app(models, model_poll_s=0, control_api=True) as client:
        index = client.post("/v2/repository/index").json()
        assert [(m["name"], m["version"], m["state"]) for m in index] == [
            ("iris-knn", "1", "READY"),
            ("iris-knn", "2", "UNAVAILABLE"),
        ]
        assert "artifact check failed" in index[1]["reason"]
        ready_only = client.post("/v2/repository/index", json={"ready": True}).json()
        assert [m["version"] for m in ready_only] == ["1"]
        assert client.post("/v2/repository/models/iris-knn/unload").status_code == 200
        assert_error(_predict(client), 404, "unloaded", "/v2/repository/models/iris-knn/load")
        assert client.post("/v2/repository/index").json() == [
            {"name": "iris-knn", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}
        ]
        assert "/v1/models/iris-knn:predict" not in client.get("/openapi.json").json()["paths"]
        assert client.post("/v2/repository/models/iris-knn/load").status_code == 200
        assert _version(_predict(client)) == 1
        assert "/v1/models/iris-knn:predict" in client.get("/openapi.json").json()["paths"]
        assert_error(client.post("/v2/repository/models/nope/load"), 404, "no model folder")
        shutil.rmtree(models / "iris-knn" / "1")
        client.post("/v2/repository/models/iris-knn/unload")
        assert_error(
            client.post("/v2/repository/models/iris-knn/load"), 400, "artifact check failed"
        )
        assert client.get("/v2").json()["extensions"].count("model_repository") == 1


def test_the_repository_api_needs_a_key(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    with running_app(
        models, api_keys=["secret-key-123456"], admin_api_keys=["admin-key-654321"]
    ) as client:
        for path in (
            "/v2/repository/index",
            "/v2/repository/models/iris-knn/load",
            "/v2/repository/models/iris-knn/unload",
        ):
            assert client.post(path).status_code == 401
        allowed = client.post(
            "/v2/repository/index", headers={"Authorization": "Bearer secret-key-123456"}
        )
        assert allowed.status_code == 200


def test_an_unloaded_version_leaves_nothing_behind(models_copy: Path) -> None:
    import gc

    from app.repository import ModelEntry, ServedVersion

    models = _iris_only(models_copy)
    with running_app(models, model_poll_s=0, control_api=True) as client:
        for _ in range(3):
            _version(_predict(client))  # in use: monitored, explained caches filled
            client.post("/v1/models/iris-knn:explain", json={"instances": [IRIS]})
            assert client.post("/v2/repository/models/iris-knn/unload").status_code == 200
            assert client.post("/v2/repository/models/iris-knn/load").status_code == 200
        gc.collect()
        for kind in (ModelEntry, ServedVersion):
            alive = [o for o in gc.get_objects() if isinstance(o, kind) and o.name == "iris-knn"]
            assert len(alive) == 1, f"an unloaded version's {kind.__name__} is still referenced"


def test_a_replica_started_on_an_empty_volume_becomes_ready_when_models_arrive(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    with running_app(models, expect_ready=False, model_poll_s=POLL_S) as client:
        assert client.get("/health/ready").status_code == 503
        shutil.copytree(tiny_models_dir / "iris-knn", models / ".iris-knn.tmp")
        (models / ".iris-knn.tmp").rename(models / "iris-knn")
        until(lambda: client.get("/health/ready").status_code == 200, "ready with iris-knn")
        assert _version(_predict(client)) == 1
        # A new model that fails later does not take the replica out of service.
        (models / "broken").mkdir()
        (models / "broken" / "1").mkdir()
        (models / "broken" / "1" / "card.json").write_text("{}")
        until(
            lambda: any(m["name"] == "broken" for m in client.get("/v1/models").json()["models"]),
            "the broken model is listed",
        )
        assert client.get("/health/ready").status_code == 200
        # ... but readiness names it, and the model's own readiness answers 503.
        assert [f["name"] for f in client.get("/health/ready").json()["failed"]] == ["broken"]
        broken = client.get("/health/ready/broken")
        assert broken.status_code == 503
        assert (broken.json()["status"], broken.json()["serving"]) == ("failed", False)
        assert client.get("/health/ready/iris-knn").status_code == 200
