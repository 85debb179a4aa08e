"""Triton's own gRPC client (`tritonclient.grpc`: sync, asyncio and stream) against a real
server: the Open Inference Protocol over gRPC works with the clients people already have,
for all four models and every datatype they take, and answers like REST does.

`tritonclient[grpc]` declares protobuf<7 while the service locks protobuf 7 (with
TensorFlow); its generated code runs on protobuf 7 unchanged, so it runs from the test
environment itself (the messages on the wire are the same either way).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import queue
import signal
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from PIL import Image

from app.schemas.card import ModelCard
from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION, MODEL_NAMES, assert_same_predictions
from tests.e2e.conftest import Server, start_server

grpcclient = pytest.importorskip("tritonclient.grpc")
aioclient = pytest.importorskip("tritonclient.grpc.aio")
service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
service_pb2_grpc = pytest.importorskip("tritonclient.grpc.service_pb2_grpc")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
reflection_pb2 = pytest.importorskip("grpc_reflection.v1alpha.reflection_pb2")
reflection_pb2_grpc = pytest.importorskip("grpc_reflection.v1alpha.reflection_pb2_grpc")


NUMERIC_TYPES = {
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
INPUT_NAMES = {"tabular": "features", "image": "image", "text": "text"}


@pytest.fixture(scope="module")
def triton(server: Server) -> Any:
    client = grpcclient.InferenceServerClient(server.grpc_address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def stub(server: Server) -> Any:
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _card(name: str) -> ModelCard:
    return ModelCard.read(COMMITTED_MODELS / name / COMMITTED_VERSION)


def _instances(card: ModelCard) -> list[Any]:
    instances = [example.instance for example in card.examples]
    if card.input.kind == "tabular":
        names = [feature.name for feature in card.input.features]
        return [[i[n] for n in names] if isinstance(i, dict) else i for i in instances]
    return instances


def _cast(values: list[Any], datatype: str) -> np.ndarray:
    """The instances in `datatype`, clipped into its range (so every datatype carries a
    valid input; REST gets the same values)."""
    dtype: np.dtype[Any] = np.dtype(NUMERIC_TYPES[datatype])
    wide = np.asarray(values, dtype=np.float64)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        wide = np.clip(np.round(wide), info.min, info.max)
    return wide.astype(dtype)


def _friendly(server: Server, name: str, instances: list[Any]) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{server.url}/v1/models/{name}:predict", json={"instances": instances}, timeout=60
    )
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def _as_predictions(result: Any, labels: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "label": label.decode() if isinstance(label, bytes) else label,
            "probabilities": dict(zip(labels, row.tolist(), strict=True)),
            "warnings": json.loads(warned),
        }
        for label, row, warned in zip(
            result.as_numpy("label"),
            result.as_numpy("probabilities"),
            result.as_numpy("warnings"),
            strict=True,
        )
    ]


def _cases() -> list[tuple[str, str]]:
    cases = []
    for name in MODEL_NAMES:
        kind = _card(name).input.kind
        types = ["BYTES"] if kind == "text" else list(NUMERIC_TYPES)
        cases += [(name, datatype) for datatype in types]
    return cases


def _png(grid: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(grid, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tensor(card: ModelCard, datatype: str) -> tuple[Any, list[Any]]:
    """(tritonclient InferInput, the same instances for the friendly API)."""
    instances = _instances(card)
    name = INPUT_NAMES[card.input.kind]
    if datatype == "BYTES":
        if card.input.kind == "image":
            pngs = [_png(grid) for grid in instances]
            array = np.array(pngs, dtype=np.object_)
            instances = [{"b64": base64.b64encode(png).decode()} for png in pngs]
        else:
            array = np.array([text.encode() for text in instances], dtype=np.object_)
    else:
        array = _cast(instances, datatype)
        instances = array.astype(np.float64).tolist()
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor, instances


def test_health_metadata_config_statistics_and_repository(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    metadata = triton.get_server_metadata()
    assert metadata.name == "synergy-serve" and "model_repository" in metadata.extensions
    for name in MODEL_NAMES:
        assert triton.is_model_ready(name) and triton.is_model_ready(name, COMMITTED_VERSION)
        model = triton.get_model_metadata(name)
        config = triton.get_model_config(name).config
        assert model.versions == [COMMITTED_VERSION]
        assert [(t.name, list(t.dims)) for t in config.input] == [
            (t.name, list(t.shape)[1:]) for t in model.inputs
        ]
        assert config.max_batch_size > 0
    assert not triton.is_model_ready("no-such-model")
    index = triton.get_model_repository_index()
    assert {(m.name, m.state) for m in index.models} == {(n, "READY") for n in MODEL_NAMES}
    stats = triton.get_inference_statistics()
    assert sorted(s.name for s in stats.model_stats) == sorted(MODEL_NAMES)


@pytest.mark.parametrize(("name", "datatype"), _cases())
def test_every_model_and_datatype_answers_as_rest_does(
    server: Server, triton: Any, name: str, datatype: str
) -> None:
    card = _card(name)
    tensor, instances = _tensor(card, datatype)
    result = triton.infer(name, [tensor], request_id=f"req-{name}")
    response = result.get_response()
    assert (response.id, response.model_name, response.model_version) == (
        f"req-{name}",
        name,
        COMMITTED_VERSION,
    )
    # label, probabilities and warnings: raw in, raw out (what tritonclient reads)
    assert len(response.raw_output_contents) == 3
    served = _as_predictions(result, card.labels)
    friendly = _friendly(server, name, instances)
    assert_same_predictions(served, friendly)
    assert [p["warnings"] for p in served] == [p["warnings"] for p in friendly]
    if datatype in ("FP32", "BYTES", "FP64"):
        assert [p["label"] for p in served] == [e.label for e in card.examples]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_typed_contents_get_typed_answers(server: Server, stub: Any, name: str) -> None:
    card = _card(name)
    instances = _instances(card)
    request = service_pb2.ModelInferRequest(model_name=name, id="typed")
    tensor = request.inputs.add(name=INPUT_NAMES[card.input.kind])
    if card.input.kind == "text":
        tensor.datatype = "BYTES"
        tensor.shape.append(len(instances))
        tensor.contents.bytes_contents.extend(text.encode() for text in instances)
    else:
        array = np.asarray(instances, dtype=np.float32)
        tensor.datatype = "FP32"
        tensor.shape.extend(array.shape)
        tensor.contents.fp32_contents.extend(array.ravel().tolist())
    request.outputs.add(name="probabilities")
    response = stub.ModelInfer(request, timeout=60)
    assert not response.raw_output_contents
    (output,) = response.outputs
    assert output.name == "probabilities"
    probabilities = np.array(output.contents.fp32_contents).reshape(list(output.shape))
    friendly = _friendly(server, name, instances)
    expected = [[p["probabilities"][label] for label in card.labels] for p in friendly]
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_the_asyncio_client(server: Server) -> None:
    async def run() -> list[list[str]]:
        client = aioclient.InferenceServerClient(server.grpc_address)
        try:
            assert await client.is_server_ready()
            labels = []
            for name in MODEL_NAMES:
                card = _card(name)
                datatype = "BYTES" if card.input.kind == "text" else "FP32"
                tensor, _ = _tensor(card, datatype)
                result = await client.infer(name, [tensor])
                labels.append([label.decode() for label in result.as_numpy("label")])
            return labels
        finally:
            await client.close()

    labels = asyncio.run(run())
    assert labels == [[e.label for e in _card(name).examples] for name in MODEL_NAMES]


def test_the_stream_answers_with_tritons_message(triton: Any) -> None:
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    triton.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for name in MODEL_NAMES:
            card = _card(name)
            tensor, _ = _tensor(card, "BYTES" if card.input.kind == "text" else "FP32")
            triton.async_stream_infer(name, [tensor], request_id=name)
        bad = grpcclient.InferInput("features", [1, 3], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
        triton.async_stream_infer("iris-knn", [bad], request_id="bad")
        results = [answers.get(timeout=60) for _ in range(len(MODEL_NAMES) + 1)]
        # Many at once (more than the stream's window): every one answered, in order (the
        # batcher's admission may refuse some on a busy machine: they answer with the error).
        many, _ = _tensor(_card("iris-knn"), "FP32")
        for number in range(150):
            triton.async_stream_infer("iris-knn", [many], request_id=f"many-{number}")
        answered = [answers.get(timeout=60) for _ in range(150)]
        ids = [result.get_response().id for result, _ in answered if result is not None]
        assert ids == sorted(ids, key=lambda i: int(i.removeprefix("many-"))) and ids
        refused = [error.message() for result, error in answered if result is None]
        assert all("overloaded" in message for message in refused), refused
    finally:
        triton.stop_stream()
    for name, (result, error) in zip(MODEL_NAMES, results, strict=False):
        assert error is None
        assert result.get_response().id == name
        labels = [label.decode() for label in result.as_numpy("label")]
        assert labels == [e.label for e in _card(name).examples]
    result, error = results[-1]
    assert result is None and "shape [N, 4]" in error.message()


def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def _raw_request(name: str, datatype: str, shape: list[int], raw: bytes) -> Any:
    request = service_pb2.ModelInferRequest(model_name=name)
    request.inputs.add(name={"iris-knn": "features", "mnist-cnn": "image"}.get(name, "text"))
    request.inputs[0].datatype = datatype
    request.inputs[0].shape.extend(shape)
    request.raw_input_contents.append(raw)
    return request


def _huge_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def _bytes(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


@pytest.mark.parametrize(
    ("request_", "code", "fragment"),
    [
        (
            _raw_request("iris-knn", "FP32", [1, 4], np.array([1, np.nan, 1, 1], "<f4").tobytes()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "finite",
        ),
        (
            _raw_request("iris-knn", "FP32", [100_000, 4], b""),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too many instances",
        ),
        (
            _raw_request("iris-knn", "FP32", [2**31 - 1, 2**31 - 1], b""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "must have shape",
        ),
        (
            _raw_request("mnist-cnn", "BYTES", [1], _bytes(_huge_png(20000, 20000))),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "pixels",
        ),
        (
            _raw_request("mnist-cnn", "BYTES", [1], _bytes(b"\xff\xd8\xff\xe0 truncated jpeg")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "image",
        ),
        (
            _raw_request("imdb-sentiment", "BYTES", [1], _bytes(b"caf\xe9 latin-1")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UTF-8",
        ),
        (
            _raw_request("imdb-sentiment", "BYTES", [1], struct.pack("<I", 2**31) + b"x"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "claims",
        ),
        (
            _raw_request("no-such-model", "FP32", [1, 4], b"\0" * 16),
            grpc.StatusCode.NOT_FOUND,
            "unknown model 'no-such-model'",
        ),
    ],
    ids=[
        "nan",
        "too-many",
        "huge-shape",
        "png-bomb",
        "bad-jpeg",
        "not-utf8",
        "bytes-length",
        "unknown-model",
    ],
)
def test_hostile_input_is_refused_in_the_services_words(
    stub: Any, request_: Any, code: grpc.StatusCode, fragment: str
) -> None:
    got, details = _code(lambda: stub.ModelInfer(request_, timeout=60))
    assert got == code, details
    assert fragment in details


def test_the_error_words_are_the_rest_ones(server: Server, stub: Any) -> None:
    request = _raw_request("iris-knn", "FP32", [1, 3], b"\0" * 12)
    code, details = _code(lambda: stub.ModelInfer(request, timeout=60))
    rest = httpx.post(
        f"{server.url}/v2/models/iris-knn/infer",
        json={
            "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [0] * 3}]
        },
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and rest.status_code == 400
    assert details == rest.json()["error"]


def test_a_message_over_the_body_limit_is_resource_exhausted(stub: Any) -> None:
    big = _raw_request("iris-knn", "FP32", [1, 4], b"\0" * (9 * 1024 * 1024))  # limit: 8 MiB
    code, _ = _code(lambda: stub.ModelInfer(big, timeout=60))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_routing_metadata_pins_a_version(stub: Any) -> None:
    request = _raw_request("iris-knn", "FP32", [1, 4], np.ones(4, "<f4").tobytes())
    pinned = stub.ModelInfer(request, metadata=[("x-model-version", COMMITTED_VERSION)])
    assert pinned.model_version == COMMITTED_VERSION
    code, details = _code(
        lambda: stub.ModelInfer(request, metadata=[("x-model-version", "7")], timeout=30)
    )
    assert code == grpc.StatusCode.NOT_FOUND and "version" in details
    code, details = _code(
        lambda: stub.ModelInfer(request, metadata=[("x-model-version", "two")], timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "X-Model-Version" in details


def test_reflection_lists_the_services(server: Server) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        (answer,) = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30
        )
    names = {service.name for service in answer.list_services_response.service}
    assert {
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names


def test_grpc_calls_are_counted_with_a_protocol_label(server: Server, triton: Any) -> None:
    triton.get_model_metadata("iris-knn")
    text = httpx.get(f"{server.url}/metrics").text
    assert any(
        line.startswith("synergy_requests_total{")
        and 'endpoint="ModelMetadata"' in line
        and 'protocol="grpc"' in line
        for line in text.splitlines()
    )
    assert 'protocol="http"' in text


# ---------------------------------------------------------------------- keys, limits, drain
@pytest.fixture(scope="module")
def iris_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir with iris-knn only: a server that starts fast."""
    import shutil

    folder = tmp_path_factory.mktemp("iris-models")
    shutil.copytree(COMMITTED_MODELS / "iris-knn", folder / "iris-knn")
    return folder


def test_api_keys_cover_every_rpc_by_policy(tmp_path: Path, iris_only: Path) -> None:
    server = start_server(tmp_path / "server.log", iris_only, SYNERGY_API_KEYS="k1")
    try:
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            request = _raw_request("iris-knn", "FP32", [1, 4], np.ones(4, "<f4").tobytes())
            code, details = _code(lambda: stub.ModelInfer(request, timeout=30))
            assert code == grpc.StatusCode.UNAUTHENTICATED and "authorization" in details
            wrong = [("authorization", "Bearer nope")]
            code, _ = _code(lambda: stub.ModelInfer(request, metadata=wrong, timeout=30))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            meta_request = service_pb2.ModelMetadataRequest(name="iris-knn")
            code, _ = _code(lambda: stub.ModelMetadata(meta_request, timeout=30))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            key = [("authorization", "Bearer k1")]
            assert stub.ModelInfer(request, metadata=key, timeout=30).outputs
            # Open by policy: the health checks (probes carry no key) and reflection.
            assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=30).live
            assert stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=30).ready
            health = health_pb2_grpc.HealthStub(channel)
            check = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            (answer,) = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30
            )
            assert answer.list_services_response.service
        triton = grpcclient.InferenceServerClient(server.grpc_address)
        assert triton.get_model_metadata("iris-knn", headers={"authorization": "Bearer k1"})
        triton.close()
        # Refused calls are counted like REST's 401s.
        metrics = httpx.get(f"{server.url}/metrics").text.splitlines()
        assert any(
            'endpoint="ModelInfer"' in line and 'protocol="grpc"' in line and 'status="401"' in line
            for line in metrics
            if line.startswith("synergy_requests_total{")
        )
    finally:
        assert server.stop() == 0


def test_model_control_over_grpc_needs_an_admin_key(tmp_path: Path, iris_only: Path) -> None:
    server = start_server(
        tmp_path / "server.log",
        iris_only,
        SYNERGY_API_KEYS="predict-key",
        SYNERGY_ADMIN_API_KEYS="admin-key",
        SYNERGY_MODEL_POLL_S="0",
    )
    try:
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            unload = service_pb2.RepositoryModelUnloadRequest(model_name="iris-knn")
            load = service_pb2.RepositoryModelLoadRequest(model_name="iris-knn")
            predictor = [("authorization", "Bearer predict-key")]
            admin = [("authorization", "Bearer admin-key")]
            code, details = _code(lambda: stub.RepositoryModelUnload(unload, metadata=predictor))
            assert code == grpc.StatusCode.PERMISSION_DENIED and "admin key" in details
            code, _ = _code(lambda: stub.RepositoryModelUnload(unload))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            # An admin key works wherever a prediction key does, and controls models.
            request = _raw_request("iris-knn", "FP32", [1, 4], np.ones(4, "<f4").tobytes())
            assert stub.ModelInfer(request, metadata=admin, timeout=30).outputs
            stub.RepositoryModelUnload(unload, metadata=admin, timeout=60)
            ready = service_pb2.ModelReadyRequest(name="iris-knn")
            assert not stub.ModelReady(ready, metadata=predictor, timeout=30).ready
            stub.RepositoryModelLoad(load, metadata=admin, timeout=120)
            assert stub.ModelReady(ready, metadata=predictor, timeout=30).ready
    finally:
        assert server.stop() == 0


def test_health_turns_not_serving_when_the_drain_begins(tmp_path: Path, iris_only: Path) -> None:
    server = start_server(tmp_path / "server.log", iris_only, SYNERGY_SHUTDOWN_GRACE_PERIOD_S="5")
    statuses: list[int] = []
    with grpc.insecure_channel(server.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name, expected in (
            ("", health_pb2.HealthCheckResponse.SERVING),
            ("inference.GRPCInferenceService", health_pb2.HealthCheckResponse.SERVING),
            ("inference.GRPCInferenceService/iris-knn", health_pb2.HealthCheckResponse.SERVING),
        ):
            assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == expected
        code, _ = _code(lambda: health.Check(health_pb2.HealthCheckRequest(service="nope")))
        assert code == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
        first = threading.Event()

        def read() -> None:
            for answer in watch:
                statuses.append(answer.status)
                first.set()

        reader = threading.Thread(target=read)
        reader.start()
        assert first.wait(30)
        server.process.send_signal(signal.SIGTERM)
        reader.join(30)
    assert server.process.wait(60) == 0
    assert statuses == [
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    ]


def test_the_drain_under_load_ends_every_call_and_does_not_wait_out_the_deadline(
    tmp_path: Path, iris_only: Path
) -> None:
    """SIGTERM while clients keep 32 ModelInfer calls in flight: calls the server had accepted
    ahead of the event loop (app.rpc.accept) are answered or released, none hangs, and the
    process exits well before the grace period would have run out."""
    grace_s = 20.0
    server = start_server(
        tmp_path / "server.log", iris_only, SYNERGY_SHUTDOWN_GRACE_PERIOD_S=str(grace_s)
    )
    request = _raw_request("iris-knn", "FP32", [1, 4], np.ones(4, "<f4").tobytes())
    codes: list[grpc.StatusCode] = []
    stop = threading.Event()
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        def client() -> None:
            while not stop.is_set():
                try:
                    stub.ModelInfer(request, timeout=2 * grace_s)
                except grpc.RpcError as error:
                    codes.append(error.code())
                    return
                codes.append(grpc.StatusCode.OK)

        clients = [threading.Thread(target=client) for _ in range(32)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 30
        while codes.count(grpc.StatusCode.OK) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(2 * grace_s) == 0
        exited_after_s = time.monotonic() - signalled
        stop.set()
        for thread in clients:
            thread.join(2 * grace_s)
    assert codes.count(grpc.StatusCode.OK) >= 200
    assert set(codes) <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
    }, set(codes)
    assert exited_after_s < grace_s / 2, exited_after_s


def _watch_with_pings(address: str, ping_ms: int, seconds: float) -> grpc.StatusCode:
    """How a health Watch held open for `seconds` by a client that pings every `ping_ms`
    ends: DEADLINE_EXCEEDED when it lasted, UNAVAILABLE when the server sent GOAWAY."""
    options = [
        ("grpc.keepalive_time_ms", ping_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with grpc.insecure_channel(address, options=options) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=seconds)
        with pytest.raises(grpc.RpcError) as ended:
            for _ in watch:
                pass
    code: grpc.StatusCode = ended.value.code()
    return code


def test_keepalive_pings_within_the_minimum_interval_are_not_sent_goaway(
    tmp_path: Path, iris_only: Path
) -> None:
    """Scaled down 10x from the goal (a client pinging every 10 s; the default minimum is
    5 s): pings every 1 s against a 0.5 s minimum keep the call; against gRPC's own 5 s they
    get GOAWAY (the control: this test sees GOAWAY when it happens)."""
    for minimum_s, expected in (
        ("0.5", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("5", grpc.StatusCode.UNAVAILABLE),
    ):
        server = start_server(
            tmp_path / f"server-{minimum_s}.log",
            iris_only,
            SYNERGY_GRPC_MIN_PING_INTERVAL_S=minimum_s,
        )
        try:
            assert _watch_with_pings(server.grpc_address, 1000, 8) == expected, minimum_s
        finally:
            server.stop()


def test_grpc_predictions_reach_the_prediction_store(server: Server, stub: Any) -> None:
    """A gRPC call's prediction is remembered under the request id it sent (`x-request-id`),
    so feedback for it works as for a REST prediction."""
    request = _raw_request(
        "iris-knn", "FP32", [2, 4], np.array([[5.1, 3.5, 1.4, 0.2]] * 2, "<f4").tobytes()
    )
    stub.ModelInfer(request, metadata=[("x-request-id", "grpc-feedback-1")], timeout=60)
    feedback = httpx.post(
        f"{server.url}/v1/models/iris-knn:feedback",
        json={"request_id": "grpc-feedback-1", "labels": ["setosa", "versicolor"]},
        timeout=60,
    )
    assert feedback.status_code == 200, feedback.text
