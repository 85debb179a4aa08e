"""Triton's own HTTP client (`tritonclient[http]`) against a real server: the V2 protocol
works with the clients people already have, unchanged."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from app.schemas.card import ModelCard
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION, MODEL_NAMES, assert_same_predictions
from tests.e2e.conftest import Server, start_server

httpclient = pytest.importorskip("tritonclient.http")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException


@pytest.fixture(scope="module")
def triton(server: Server) -> Any:
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    yield client
    client.close()


def _input_array(card: ModelCard) -> tuple[str, np.ndarray]:
    """The card's real examples as the tensor each model's metadata asks for."""
    instances = [example.instance for example in card.examples]
    if card.input.kind == "tabular":
        names = [feature.name for feature in card.input.features]
        rows = [[i[n] for n in names] if isinstance(i, dict) else i for i in instances]
        return "FP32", np.array(rows, dtype=np.float32)
    if card.input.kind == "image":
        return "UINT8", np.array(instances, dtype=np.uint8)
    return "BYTES", np.array([text.encode() for text in instances], dtype=np.object_)


def _friendly(server: Server, name: str, instances: list[Any]) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{server.url}/v1/models/{name}:predict", json={"instances": instances}, timeout=30
    )
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def _as_predictions(result: Any, labels: list[str]) -> list[dict[str, Any]]:
    return [
        # Binary BYTES come back as bytes, JSON ones as str (tritonclient's behaviour).
        {
            "label": label.decode() if isinstance(label, bytes) else label,
            "probabilities": dict(zip(labels, row.tolist(), strict=True)),
        }
        for label, row in zip(
            result.as_numpy("label"), result.as_numpy("probabilities"), strict=True
        )
    ]


def test_health_and_server_metadata(triton: Any) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.get_server_metadata()["name"] == "synergy-serve"
    for name in MODEL_NAMES:
        assert triton.is_model_ready(name)
        assert triton.is_model_ready(name, COMMITTED_VERSION)
    assert not triton.is_model_ready("no-such-model")


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_the_friendly_api(
    server: Server, triton: Any, name: str, binary: bool
) -> None:
    card = ModelCard.read(COMMITTED_MODELS / name / COMMITTED_VERSION)
    metadata = triton.get_model_metadata(name)
    (input_metadata,) = metadata["inputs"]
    datatype, array = _input_array(card)
    tensor = httpclient.InferInput(input_metadata["name"], list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput("label", binary_data=binary),
        httpclient.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = triton.infer(name, [tensor], outputs=outputs, request_id=f"req-{name}")
    assert result.get_response()["id"] == f"req-{name}"
    served = _as_predictions(result, metadata["labels"])
    assert [p["label"] for p in served] == [example.label for example in card.examples]
    friendly = _friendly(server, name, [example.instance for example in card.examples])
    assert_same_predictions(served, friendly)


def test_default_outputs_and_a_single_requested_output(server: Server, triton: Any) -> None:
    card = ModelCard.read(COMMITTED_MODELS / "iris-knn" / COMMITTED_VERSION)
    datatype, array = _input_array(card)
    tensor = httpclient.InferInput("features", list(array.shape), datatype)
    tensor.set_data_from_numpy(array)  # the client's defaults: binary in, binary out
    everything = triton.infer("iris-knn", [tensor], model_version=COMMITTED_VERSION)
    assert everything.as_numpy("label").shape == (len(array),)
    assert everything.as_numpy("probabilities").shape == (len(array), 3)
    only = triton.infer(
        "iris-knn", [tensor], outputs=[httpclient.InferRequestedOutput("probabilities")]
    )
    assert only.as_numpy("label") is None
    np.testing.assert_array_equal(
        only.as_numpy("probabilities"), everything.as_numpy("probabilities")
    )


def test_png_bytes_through_tritonclient(server: Server, triton: Any) -> None:
    card = ModelCard.read(COMMITTED_MODELS / "mnist-cnn" / COMMITTED_VERSION)
    pngs = []
    for example in card.examples:
        buffer = io.BytesIO()
        grid = np.array(example.instance, dtype=np.uint8)
        Image.fromarray(255 - grid).resize((112, 112)).save(buffer, format="PNG")  # ink on paper
        pngs.append(buffer.getvalue())
    tensor = httpclient.InferInput("image", [len(pngs)], "BYTES")
    tensor.set_data_from_numpy(np.array(pngs, dtype=np.object_))
    result = triton.infer("mnist-cnn", [tensor])
    served = _as_predictions(result, triton.get_model_metadata("mnist-cnn")["labels"])
    friendly = _friendly(
        server, "mnist-cnn", [{"b64": base64.b64encode(png).decode()} for png in pngs]
    )
    assert_same_predictions(served, friendly)
    assert [p["label"] for p in served] == [example.label for example in card.examples]


def test_errors_reach_the_client_as_messages(triton: Any) -> None:
    tensor = httpclient.InferInput("features", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException) as shape_error:
        triton.infer("iris-knn", [tensor])
    assert shape_error.value.status() == "400"
    assert "shape [N, 4]" in shape_error.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        triton.get_model_metadata("no-such-model")
    assert unknown.value.status() == "404"


def test_model_config_through_tritonclient(triton: Any) -> None:
    for name in MODEL_NAMES:
        config = triton.get_model_config(name)
        assert config == triton.get_model_config(name, COMMITTED_VERSION)
        metadata = triton.get_model_metadata(name)
        assert config["max_batch_size"] > 0
        assert config["dynamic_batching"]["max_queue_delay_microseconds"] >= 0
        # What perf_analyzer reads: names, types and dims (without the batch dimension).
        for ours, theirs in (("input", "inputs"), ("output", "outputs")):
            assert [(t["name"], t["dims"]) for t in config[ours]] == [
                (t["name"], t["shape"][1:]) for t in metadata[theirs]
            ]
    with pytest.raises(InferenceServerException) as unknown:
        triton.get_model_config("no-such-model")
    assert unknown.value.status() == "404"


def test_inference_statistics_through_tritonclient(triton: Any) -> None:
    everything = triton.get_inference_statistics()["model_stats"]
    assert sorted(s["name"] for s in everything) == sorted(MODEL_NAMES)
    card = ModelCard.read(COMMITTED_MODELS / "imdb-sentiment" / COMMITTED_VERSION)
    datatype, array = _input_array(card)
    before = triton.get_inference_statistics("imdb-sentiment", COMMITTED_VERSION)["model_stats"]
    tensor = httpclient.InferInput("text", list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    triton.infer("imdb-sentiment", [tensor])
    (after,) = triton.get_inference_statistics("imdb-sentiment")["model_stats"]
    (earlier,) = before
    assert after["version"] == COMMITTED_VERSION
    assert after["inference_count"] - earlier["inference_count"] == len(array)
    assert after["execution_count"] > earlier["execution_count"]
    success, previous = after["inference_stats"]["success"], earlier["inference_stats"]["success"]
    assert success["count"] == previous["count"] + 1 and success["ns"] > previous["ns"]
    for key in ("queue", "compute_infer"):
        assert after["inference_stats"][key]["ns"] > earlier["inference_stats"][key]["ns"]
    assert after["last_inference"] > 0


def test_the_repository_api_works_with_tritonclient(tmp_path: Path) -> None:
    # Model control is off by default, and unload refused while the models dir is polled.
    server = start_server(
        tmp_path / "server.log", SYNERGY_CONTROL_API="true", SYNERGY_MODEL_POLL_S="0"
    )
    triton = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        _repository_calls(triton)
    finally:
        triton.close()
        server.stop()


def _repository_calls(triton: Any) -> None:
    index = triton.get_model_repository_index()
    assert {(m["name"], m["state"]) for m in index} == {(n, "READY") for n in MODEL_NAMES}
    triton.unload_model("iris-knn")
    assert not triton.is_model_ready("iris-knn")
    unloaded = [m for m in triton.get_model_repository_index() if m["name"] == "iris-knn"]
    assert unloaded == [
        {"name": "iris-knn", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}
    ]
    triton.load_model("iris-knn")  # returns when loaded
    assert triton.is_model_ready("iris-knn")
    with pytest.raises(InferenceServerException, match="no model folder"):
        triton.load_model("no-such-model")
