"""Triton's model configuration and statistics extensions over the in-process client: the
shapes tritonclient and perf_analyzer read, agreement with the V2 metadata, counts that move
with predictions, and V2's errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_v2 import infer, v2_request
from tests.conftest import MODEL_NAMES, assert_error, card_examples, predict, running_app

DURATIONS = (
    "success",
    "fail",
    "queue",
    "compute_input",
    "compute_infer",
    "compute_output",
    "cache_hit",
    "cache_miss",
)


def _stats(client: Any, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _one(client: Any, name: str, version: str = "1") -> dict[str, Any]:
    stats = _stats(client, f"/v2/models/{name}/versions/{version}/stats")["model_stats"]
    assert len(stats) == 1
    one: dict[str, Any] = stats[0]
    return one


def test_extensions_are_announced(client: Any) -> None:
    extensions = client.get("/v2").json()["extensions"]
    assert {"model_configuration", "statistics"} <= set(extensions)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_describes_the_tensors_of_the_metadata(client: Any, name: str) -> None:
    metadata = client.get(f"/v2/models/{name}").json()
    config = client.get(f"/v2/models/{name}/config").json()
    assert config == client.get(f"/v2/models/{name}/versions/1/config").json()
    assert config["name"] == name
    assert config["platform"] == metadata["platform"]
    assert config["max_batch_size"] == 64  # the default SYNERGY_MAX_BATCH_SIZE
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 2000}
    latest = client.app.state.settings.repository.max_versions_per_model
    assert config["version_policy"] == {"latest": {"num_versions": latest}}
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    types = {"FP32": "TYPE_FP32", "BYTES": "TYPE_STRING"}
    for ours, theirs in (("input", "inputs"), ("output", "outputs")):
        assert [t["name"] for t in config[ours]] == [t["name"] for t in metadata[theirs]]
        for tensor, described in zip(config[ours], metadata[theirs], strict=True):
            # dims leave out the batch dimension (max_batch_size > 0).
            assert described["shape"][0] == -1
            assert tensor["dims"] == described["shape"][1:]
            assert tensor["data_type"] == types[described["datatype"]]


def test_config_follows_the_batching_settings(tiny_models_dir: Any) -> None:
    with running_app(
        tiny_models_dir, max_batch_size=8, max_batch_wait_ms=0.5, max_queue_rows=100
    ) as configured:
        config = configured.get("/v2/models/iris-knn/config").json()
    assert config["max_batch_size"] == 8
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 500
    assert config["parameters"]["max_queue_rows"] == {"string_value": "100"}


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/v2/models/no-such-model/config", "unknown model 'no-such-model'"),
        ("/v2/models/iris-knn/versions/7/config", "has no version 7"),
        ("/v2/models/iris-knn/versions/one/config", "versions are integers"),
        ("/v2/models/no-such-model/stats", "unknown model 'no-such-model'"),
        ("/v2/models/iris-knn/versions/7/stats", "has no version 7"),
        ("/v2/models/iris-knn/versions/one/stats", "versions are integers"),
    ],
)
def test_unknown_models_and_versions_are_404(client: Any, path: str, fragment: str) -> None:
    assert_error(client.get(path), 404, fragment)


def test_stats_of_every_model_is_not_taken_for_a_model_called_stats(client: Any) -> None:
    stats = _stats(client, "/v2/models/stats")["model_stats"]
    assert [(s["name"], s["version"]) for s in stats] == [(n, "1") for n in sorted(MODEL_NAMES)]
    assert _stats(client, "/v2/models/iris-knn/stats")["model_stats"] == [_one(client, "iris-knn")]
    for version in stats:
        assert set(version["inference_stats"]) == set(DURATIONS)
        for duration in version["inference_stats"].values():
            assert set(duration) == {"count", "ns"}


def test_counts_move_with_predictions_on_every_protocol(client: Any, tiny_models_dir: Any) -> None:
    name = "binary-mlp"
    examples = [instance for instance, _ in card_examples(tiny_models_dir, name)]
    before, other_before = _one(client, name), _one(client, "iris-knn")
    assert predict(client, name, examples[:1]).status_code == 200
    assert predict(client, name, examples[:3]).status_code == 200
    assert infer(client, name, v2_request(client, name, examples[:2])).status_code == 200
    # Served by the version and refused: a failure (after the version was chosen).
    assert predict(client, name, [[1.0]]).status_code == 422
    after = _one(client, name)

    def delta(key: str, field: str = "count") -> int:
        change: int = after["inference_stats"][key][field] - before["inference_stats"][key][field]
        return change

    assert delta("success") == 3 and delta("success", "ns") > 0
    assert delta("fail") == 1 and delta("fail", "ns") > 0
    rows = 1 + len(examples[:3]) + len(examples[:2])
    assert after["inference_count"] - before["inference_count"] == rows
    executions = after["execution_count"] - before["execution_count"]
    assert 1 <= executions <= 3  # batches (requests may share one)
    assert delta("queue") >= 3 and delta("queue", "ns") > 0
    assert delta("compute_infer") >= 3 and delta("compute_infer", "ns") > 0
    assert delta("compute_input") == delta("compute_infer")
    assert after["last_inference"] > 0 and after["last_inference"] >= before["last_inference"]
    batches = after["batch_stats"]
    assert sum(b["compute_infer"]["count"] for b in batches) == after["execution_count"]
    assert all(b["compute_infer"]["ns"] > 0 for b in batches)
    assert sorted(b["batch_size"] for b in batches) == [b["batch_size"] for b in batches]
    # Per version: another model's numbers did not move.
    assert _one(client, "iris-knn") == other_before
