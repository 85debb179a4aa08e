"""Lifecycle and protocol correctness (docs/lifecycle.md): load and unload of one model in any
order, config changes while another model loads, version policies that select nothing, the
one version range, shadow copies kept out of a version's statistics, Triton load parameters
the server does not support."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.repository import ModelEntry, loading
from app.runtimes.base import Model
from app.schemas.versions import MAX_VERSION
from tests.api.test_lifecycle import (
    IRIS,
    POLL_S,
    _config,
    _iris,
    _iris_only,
    _predict,
    _publish,
    _version,
)
from tests.conftest import assert_error, running_app
from tests.polling import until

BEYOND_INT64 = str(MAX_VERSION + 1)
ABOVE_INT32 = 2**40


class _Gate:
    """Holds the loads of one model until opened (a slow load, on demand, with no timing)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.opened = threading.Event()
        self.waiting = threading.Event()


@contextmanager
def _gated_loads(monkeypatch: pytest.MonkeyPatch, model: str) -> Iterator[_Gate]:
    gate = _Gate(model)
    real_load = loading.load_version

    def load(entry: ModelEntry, *args: Any) -> Model | None:
        if entry.name == gate.model:
            gate.waiting.set()
            assert gate.opened.wait(120), "the gate was never opened"
        return real_load(entry, *args)

    monkeypatch.setattr("app.repository.lifecycle.load_version", load)
    try:
        yield gate
    finally:
        gate.opened.set()


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


def _index(client: Any) -> list[tuple[str, str, str]]:
    rows = client.post("/v2/repository/index").json()
    return [(row["name"], row["version"], row["state"]) for row in rows]


# ---------------------------------------------------------------- load and unload: later wins
def test_a_load_during_an_unload_waits_for_it_and_the_model_is_loaded_at_the_end(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    with running_app(models, model_poll_s=0, control_api=True) as client:
        entry = client.app.state.service.registry.find("iris-knn", 1)
        client.portal.call(entry.leases.acquire)  # a request in flight holds version 1
        unload, unloaded = _in_thread(lambda: client.post("/v2/repository/models/iris-knn/unload"))
        until(lambda: ("iris-knn", "1", "UNLOADING") in _index(client), "the unload waits")
        load, loaded = _in_thread(lambda: client.post("/v2/repository/models/iris-knn/load"))
        client.portal.call(entry.leases.release)  # the request finishes
        unload.join(60)
        load.join(60)
        assert unloaded[0].status_code == 200, unloaded[0].text
        assert loaded[0].status_code == 200, loaded[0].text
        # The later call won: loaded at the end, and it stays so.
        assert _version(_predict(client)) == 1
        assert _index(client) == [("iris-knn", "1", "READY")]
        assert client.get("/health/ready").status_code == 200


def test_an_unload_during_a_load_wins_and_the_load_answers_409(
    models_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = _iris_only(models_copy)
    with running_app(models, model_poll_s=0, control_api=True) as client:
        assert client.post("/v2/repository/models/iris-knn/unload").status_code == 200
        with _gated_loads(monkeypatch, "iris-knn") as gate:
            load, loaded = _in_thread(lambda: client.post("/v2/repository/models/iris-knn/load"))
            assert gate.waiting.wait(60), "the load never started"
            assert client.post("/v2/repository/models/iris-knn/unload").status_code == 200
            gate.opened.set()
            load.join(60)
        assert_error(loaded[0], 409, "unloaded by a later request", "stays unloaded")
        assert_error(_predict(client), 404, "unloaded")
        assert _index(client) == [("iris-knn", "", "UNAVAILABLE")]
        # Loaded again, it serves.
        assert client.post("/v2/repository/models/iris-knn/load").status_code == 200
        assert _version(_predict(client)) == 1


def test_two_loads_and_two_unloads_in_a_row_agree(
    models_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = _iris_only(models_copy)
    with running_app(models, model_poll_s=0, control_api=True) as client:
        assert client.post("/v2/repository/models/iris-knn/unload").status_code == 200
        assert client.post("/v2/repository/models/iris-knn/unload").status_code == 200
        with _gated_loads(monkeypatch, "iris-knn") as gate:
            first, first_result = _in_thread(
                lambda: client.post("/v2/repository/models/iris-knn/load")
            )
            assert gate.waiting.wait(60)
            second, second_result = _in_thread(
                lambda: client.post("/v2/repository/models/iris-knn/load")
            )
            gate.opened.set()
            first.join(60)
            second.join(60)
        # The second load waited for the first one's versions, not answering "none ready".
        assert first_result[0].status_code == 200, first_result[0].text
        assert second_result[0].status_code == 200, second_result[0].text
        assert _version(_predict(client)) == 1


# ---------------------------------------------------------------- scans never wait for loads
def test_a_traffic_rollback_applies_at_the_next_poll_while_another_model_loads(
    models_copy: Path, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2)
    _config(models, {"labels": {"stable": 1, "canary": 2}, "traffic": {"canary": 1}})
    with running_app(models, model_poll_s=POLL_S) as client:
        assert _version(_predict(client)) == 2
        with _gated_loads(monkeypatch, "binary-mlp") as gate:
            shutil.copytree(tiny_models_dir / "binary-mlp", models / ".binary-mlp.tmp")
            (models / ".binary-mlp.tmp").rename(models / "binary-mlp")
            assert gate.waiting.wait(60), "binary-mlp never started loading"
            _config(models, {"labels": {"stable": 1, "canary": 2}, "traffic": {"stable": 1}})
            until(lambda: _version(_predict(client)) == 1, "the rollback applies", 30)
            # New labels too, and the index and readiness answer, while the load is held.
            _config(models, {"labels": {"stable": 1, "beta": 2}, "traffic": {"stable": 1}})
            until(lambda: "beta" in _iris(client)["version_labels"], "the new label applies", 30)
            assert ("binary-mlp", "1", "LOADING") in _index(client)
            assert client.get("/health/ready").status_code == 200
            gate.opened.set()
        until(
            lambda: client.get("/v2/models/binary-mlp/ready").status_code == 200,
            "binary-mlp ready once its load ends",
        )
        assert _version(_predict(client)) == 1


# ---------------------------------------------------------------- a policy that selects nothing
def test_a_version_policy_that_selects_no_folder_is_refused_at_start_up_and_live(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2)
    _config(models, {"version_policy": {"specific": [7]}})
    with running_app(models, model_poll_s=POLL_S) as client:
        # Start-up: the model does not vanish; it serves with the defaults and says why.
        listed = _iris(client)
        assert "version_policy" in listed["config_error"], listed
        assert "folders are 1, 2" in listed["config_error"], listed
        assert _version(_predict(client)) == 2
        assert client.get("/health/ready").status_code == 200
        _config(models, {"version_policy": {"specific": [1]}})
        until(lambda: [v["version"] for v in _iris(client)["versions"]] == [1], "specific 1")
        assert "config_error" not in _iris(client)
        # Live: refused, naming the field, and the previous policy stays in force.
        for policy in ({"specific": [9]}, {"specific": [3, 4]}):
            _config(models, {"version_policy": policy})
            error = until(lambda: _iris(client).get("config_error"), f"{policy} refused")
            assert "config.json is invalid: version_policy" in error, error
            assert _iris(client)["version_policy"] == {"specific": [1]}
            assert _version(_predict(client)) == 1
            _config(models, {"version_policy": {"specific": [1]}})
            until(lambda: "config_error" not in _iris(client), "the valid config is back")


# ---------------------------------------------------------------- one version range
def test_a_folder_beyond_the_version_range_is_refused_with_a_reason_and_nothing_breaks(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    _publish(models, MAX_VERSION + 1)  # its card says the same number, as a user's would
    with running_app(models, model_poll_s=POLL_S) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        refused = [m for m in ready.json()["models"] if m.get("folder") == BEYOND_INT64]
        assert refused and "outside the version range" in refused[0]["reason"], ready.text
        assert refused[0]["version"] == 0 and refused[0]["state"] == "failed"
        listing = client.get("/v1/models")
        assert listing.status_code == 200
        assert "outside the version range" in _iris(client)["refused_folders"][BEYOND_INT64]
        assert [v["version"] for v in _iris(client)["versions"]] == [1]
        assert _version(_predict(client)) == 1
        rows = client.post("/v2/repository/index").json()
        assert {"name": "iris-knn", "version": BEYOND_INT64, "state": "UNAVAILABLE"}.items() <= (
            next(r for r in rows if r["version"] == BEYOND_INT64).items()
        )
        assert client.get("/v2/models/iris-knn/stats").status_code == 200
        # Renamed into the range: served (and the refusal is gone).
        _publish(models, 3)
        shutil.rmtree(models / "iris-knn" / BEYOND_INT64)
        until(lambda: "refused_folders" not in _iris(client), "the refusal is gone")
        until(lambda: _version(_predict(client)) == 3, "version 3 serves")


def test_a_version_above_int32_works_on_every_route_and_in_config(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    _publish(models, ABOVE_INT32)
    _config(models, {"labels": {"big": ABOVE_INT32}, "traffic": {str(ABOVE_INT32): 1}})
    with running_app(models, model_poll_s=0, control_api=True) as client:
        assert "config_error" not in _iris(client), _iris(client)
        big = str(ABOVE_INT32)
        assert _version(_predict(client)) == ABOVE_INT32
        assert _version(_predict(client, f"iris-knn/versions/{big}")) == ABOVE_INT32
        assert _version(_predict(client, "iris-knn/labels/big")) == ABOVE_INT32
        assert _version(_predict(client, headers={"X-Model-Version": big})) == ABOVE_INT32
        v2 = client.post(
            f"/v2/models/iris-knn/versions/{big}/infer",
            json={
                "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": IRIS}]
            },
        )
        assert v2.status_code == 200 and v2.json()["model_version"] == big, v2.text
        for path in (
            f"/v1/models/iris-knn/versions/{big}",
            f"/v1/models/iris-knn/versions/{big}/metrics",
            f"/v2/models/iris-knn/versions/{big}",
            f"/v2/models/iris-knn/versions/{big}/stats",
        ):
            assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("text", [BEYOND_INT64, "0", "1" * 30, "-1", "1.5", "x"])
def test_a_version_that_is_not_in_the_range_gets_one_status_and_message_on_every_route(
    client: Any, text: str
) -> None:
    body = {"instances": [IRIS]}
    v2_body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": IRIS}]}
    message = "is not a model version; versions are integers from 1 to"
    # One parser, one status (400: TF Serving's INVALID_ARGUMENT), one message everywhere.
    assert_error(
        client.post(f"/v1/models/iris-knn/versions/{text}:predict", json=body), 400, message
    )
    assert_error(
        client.post(f"/v1/models/iris-knn/versions/{text}:explain", json=body), 400, message
    )
    assert_error(
        client.post(f"/v2/models/iris-knn/versions/{text}/infer", json=v2_body), 400, message
    )
    for path in ("", "/metrics", "/monitoring", "/report"):
        assert_error(client.get(f"/v1/models/iris-knn/versions/{text}{path}"), 400, message)
    assert_error(
        client.post("/v1/models/iris-knn:predict", json=body, headers={"X-Model-Version": text}),
        400,
        "X-Model-Version",
        message,
    )


def test_a_config_naming_a_version_beyond_the_range_is_refused(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    with running_app(models, model_poll_s=POLL_S) as client:
        for config, field in (
            ({"labels": {"big": MAX_VERSION + 1}}, "labels.big"),
            ({"traffic": {BEYOND_INT64: 1}}, "traffic"),
            ({"version_policy": {"specific": [MAX_VERSION + 1]}}, "version_policy.specific"),
        ):
            _config(models, config)
            error = until(lambda: _iris(client).get("config_error"), f"{config} refused")
            assert field in error, error
            assert _version(_predict(client)) == 1
            _config(models, {})
            until(lambda: "config_error" not in _iris(client), "the valid config is back")


# ---------------------------------------------------------------- shadow apart from own stats
def test_shadow_copies_are_counted_apart_from_the_versions_own_statistics(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    _publish(models, 2)
    _config(
        models,
        {"labels": {"stable": 1, "canary": 2}, "traffic": {"stable": 1}, "shadow": "canary"},
    )
    with running_app(models, model_poll_s=0, control_api=True) as client:
        for _ in range(12):
            assert _version(_predict(client)) == 1

        def stats(version: int) -> dict[str, Any]:
            body = client.get(f"/v2/models/iris-knn/versions/{version}/stats").json()
            one: dict[str, Any] = body["model_stats"][0]
            return one

        canary = until(
            lambda: (s := stats(2))["shadow_stats"]["inference_count"] == 12 and s,
            "12 shadow rows counted",
        )
        inference = canary["inference_stats"]
        assert inference["success"]["count"] == 0
        assert inference["queue"]["count"] == inference["compute_infer"]["count"] == 0
        assert canary["inference_count"] == canary["execution_count"] == 0
        assert canary["shadow_stats"]["queue"]["count"] == 12
        assert canary["shadow_stats"]["compute_infer"]["count"] == 12

        def predicted(version: int) -> int:
            serving = client.get(f"/v1/models/iris-knn/versions/{version}/metrics").json()
            return sum(c["count"] for c in serving["serving"]["predicted_labels"].values())

        assert predicted(2) == 0  # shadow copies are not the canary's predictions
        assert predicted(1) == 12
        stable = stats(1)
        assert stable["inference_stats"]["success"]["count"] == 12
        assert stable["inference_stats"]["queue"]["count"] == 12
        assert stable["shadow_stats"]["inference_count"] == 0
        # Its own requests count as its own, next to the shadow copies.
        assert _version(_predict(client, "iris-knn/versions/2")) == 2
        own = until(
            lambda: (s := stats(2))["inference_stats"]["queue"]["count"] == 1 and s,
            "the canary's own request counted",
        )
        assert own["inference_stats"]["success"]["count"] == 1
        assert own["shadow_stats"]["inference_count"] == 12
        assert predicted(2) == 1


# ---------------------------------------------------------------- Triton load parameters
def test_load_refuses_triton_parameters_it_does_not_support(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir, control_api=True, model_poll_s=0) as client:
        _refuses_unsupported_parameters(client)


def _refuses_unsupported_parameters(client: Any) -> None:
    load = "/v2/repository/models/iris-knn/load"
    unload = "/v2/repository/models/iris-knn/unload"
    assert_error(
        client.post(load, json={"parameters": {"config": '{"max_batch_size": 8}'}}),
        400,
        "parameters.config",
        "not supported",
        "config.json",
    )
    assert_error(
        client.post(load, json={"parameters": {"file:1/model.onnx": "AAAA"}}),
        400,
        "parameters.file:1/model.onnx",
        "not supported",
    )
    assert_error(client.post(load, json={"parameters": {"priority": 1}}), 400, "no parameters")
    assert_error(client.post(load, content=b"{not json"), 400, "parameters")
    assert_error(client.post(load, json={"model": "x"}), 400, "model")
    assert_error(client.post(unload, json={"parameters": {"x": 1}}), 400, "unload_dependents")
    assert_error(
        client.post(unload, json={"parameters": {"unload_dependents": "yes"}}), 400, "true or false"
    )
    # What is supported still works, and nothing was changed by the refusals.
    assert client.post(load, json={}).status_code == 200
    assert client.post(load, json={"parameters": {}}).status_code == 200
    assert _version(client.post("/v1/models/iris-knn:predict", json={"instances": [IRIS]})) == 1
