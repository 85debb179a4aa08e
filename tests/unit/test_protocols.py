"""Each protocol decodes into the same rows, goes through the same core and encodes the same
answer, each in its own words: V1 (`instances`), V2 REST (tensors), Triton/gRPC (protobuf
tensors) and the Triton extensions, all against a core serving a fake version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from app.errors import BadRequest, InvalidInput, MalformedVersion, ServingError
from app.protocols import triton
from app.protocols.tensors import model_metadata
from app.protocols.v1 import V1Protocol
from app.protocols.v2 import V2Protocol
from app.rpc.generated import grpc_service_pb2 as pb
from app.rpc.service import InferenceServicer
from tests.unit.fake_version import LABELS, NAME, POISON, Served, context, expected, serve

pytestmark = pytest.mark.anyio
ROWS = [[0.5, -1.0], [-0.25, 0.0], [1.0, 0.75]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    served = serve(tmp_path)
    yield served
    await served.core.stop(1)


def _v1_probabilities(answer: dict[str, Any]) -> np.ndarray:
    return np.array(
        [[p["probabilities"][label] for label in LABELS] for p in answer["predictions"]]
    )


def _v2_body(rows: list[list[float]], **request: Any) -> bytes:
    flat = [value for row in rows for value in row]
    tensor = {"name": "features", "datatype": "FP32", "shape": [len(rows), 2], "data": flat}
    return orjson.dumps({"inputs": [tensor], **request})


def _grpc_request(rows: list[list[float]], version: str = "") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=NAME, model_version=version, id="r1")
    tensor = request.inputs.add(name="features", datatype="FP32", shape=[len(rows), 2])
    tensor.contents.fp32_contents.extend(value for row in rows for value in row)
    return request


def _servicer(served: Served) -> InferenceServicer:
    # Inference needs only the core; the repository, state and recorder serve other RPCs.
    return InferenceServicer(served.core, lambda: True, None, None, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- V1
async def test_v1_named_features_and_plain_lists_decode_to_the_same_answer(
    served: Served,
) -> None:
    v1 = V1Protocol(served.core)
    named = [{"a": a, "b": b} for a, b in ROWS]
    by_name = await v1.predict(NAME, None, orjson.dumps({"instances": named}), context())
    by_list = await v1.predict(NAME, 1, orjson.dumps({"instances": ROWS}), context())
    assert by_name["model"] == NAME and by_name["version"] == 1
    assert by_name == by_list
    np.testing.assert_allclose(_v1_probabilities(by_name), expected(ROWS), atol=1e-3)
    assert [p["label"] for p in by_name["predictions"]] == ["no", "no", "yes"]
    assert all(p["warnings"] == [] for p in by_name["predictions"])


@pytest.mark.parametrize(
    ("body", "error", "fragment"),
    [
        (b'{"instances": [[1, 2], [3]]}', InvalidInput, "instances[1]"),
        (b'{"instances": []}', InvalidInput, '"instances" is empty'),
        (b'{"instances": ', BadRequest, "not valid JSON"),
        (b'{"rows": [[1, 2]]}', InvalidInput, '"instances" is missing'),
    ],
)
async def test_v1_refuses_bad_bodies_in_its_own_words(
    served: Served, body: bytes, error: type[ServingError], fragment: str
) -> None:
    with pytest.raises(error) as raised:
        await V1Protocol(served.core).predict(NAME, None, body, context())
    assert fragment in raised.value.message
    assert served.runtime.batches == []  # refused before the model


async def test_v1_names_the_row_the_model_cannot_compute(served: Served) -> None:
    body = orjson.dumps({"instances": [[1.0, 2.0], [POISON, 0.0]]})
    with pytest.raises(InvalidInput) as raised:
        await V1Protocol(served.core).predict(NAME, None, body, context())
    assert raised.value.status_code == 422
    assert raised.value.message.startswith("instances[1]: a = 999 is out of the range")


# ---------------------------------------------------------------- V2
async def test_v2_tensors_get_the_same_answer_as_v1(served: Served) -> None:
    v1 = await V1Protocol(served.core).predict(
        NAME, None, orjson.dumps({"instances": ROWS}), context()
    )
    v2 = V2Protocol(served.core, lambda: True)
    body, headers, media_type = await v2.infer(NAME, "1", _v2_body(ROWS, id="r1"), {}, context())
    answer = json.loads(body)
    assert media_type == "application/json" and headers == {}
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (NAME, "1", "r1")
    outputs = {output["name"]: output for output in answer["outputs"]}
    assert outputs["label"]["data"] == [p["label"] for p in v1["predictions"]]
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(len(ROWS), 2)
    np.testing.assert_allclose(probabilities, _v1_probabilities(v1), atol=1e-6)


async def test_v2_words_errors_as_its_protocol_does(served: Served) -> None:
    v2 = V2Protocol(served.core, lambda: True)
    with pytest.raises(BadRequest) as uncomputable:
        await v2.infer(NAME, None, _v2_body([[1.0, 2.0], [POISON, 0.0]]), {}, context())
    assert uncomputable.value.status_code == 400  # V2: every client error is a 400
    assert uncomputable.value.message.startswith("input features[1]: a = 999 is out of")
    with pytest.raises(MalformedVersion) as malformed:
        await v2.infer(NAME, "x", _v2_body(ROWS), {}, context())
    assert malformed.value.status_code == 400
    assert "'x' is not a model version" in malformed.value.message


async def test_v2_metadata_describes_the_versions_tensors(served: Served) -> None:
    metadata = model_metadata(served.core, NAME, None)
    assert metadata["versions"] == ["1"] and metadata["labels"] == LABELS
    assert [(t["name"], t["shape"]) for t in metadata["inputs"]] == [("features", [-1, 2])]
    assert {t["name"] for t in metadata["outputs"]} >= {"label", "probabilities"}
    # The features' real names and datatypes (JSON arrays: V2 parameters are scalars).
    parameters = metadata["inputs"][0]["parameters"]
    assert json.loads(parameters["feature_names"]) == ["a", "b"]
    assert json.loads(parameters["feature_datatypes"]) == ["FP32", "FP32"]


# ---------------------------------------------------------------- Triton extensions
async def test_triton_configuration_and_statistics_come_from_the_core(served: Served) -> None:
    config = triton.model_config(served.core, NAME, "1")
    assert config["name"] == NAME and config["max_batch_size"] == 64
    assert [(t["name"], t["dims"]) for t in config["input"]] == [("features", [2])]
    statistics = triton.model_statistics(served.core, NAME, None)
    assert [(s["name"], s["version"]) for s in statistics["model_stats"]] == [(NAME, "1")]
    with pytest.raises(MalformedVersion):
        triton.model_config(served.core, NAME, "one")


# ---------------------------------------------------------------- gRPC
async def test_grpc_tensors_get_the_same_answer_as_v1(served: Served) -> None:
    v1 = await V1Protocol(served.core).predict(
        NAME, None, orjson.dumps({"instances": ROWS}), context()
    )
    response = await _servicer(served).infer(_grpc_request(ROWS, "1"), context())
    assert (response.model_name, response.model_version, response.id) == (NAME, "1", "r1")
    outputs = {output.name: index for index, output in enumerate(response.outputs)}
    labels = response.outputs[outputs["label"]].contents.bytes_contents
    assert [label.decode() for label in labels] == [p["label"] for p in v1["predictions"]]
    probabilities = np.array(
        response.outputs[outputs["probabilities"]].contents.fp32_contents
    ).reshape(len(ROWS), 2)
    np.testing.assert_allclose(probabilities, _v1_probabilities(v1), atol=1e-6)


async def test_grpc_words_errors_as_v2_does(served: Served) -> None:
    servicer = _servicer(served)
    with pytest.raises(BadRequest) as uncomputable:
        await servicer.infer(_grpc_request([[1.0, 2.0], [POISON, 0.0]]), context())
    assert uncomputable.value.message.startswith("input features[1]: ")
    with pytest.raises(MalformedVersion):
        await servicer.infer(_grpc_request(ROWS, "0"), context())
