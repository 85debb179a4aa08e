"""An imported `ColumnTransformer` model (string categories, missing values, booleans) over
V2 with one input tensor per feature, as V2 clients send a table (issue 22): REST JSON, REST
binary and gRPC (typed and raw) answer what V1 answers for the same rows; the metadata lists
one input per feature; each wrong request is a 400 that names the input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from app.codecs.v2 import bytes_tensor
from app.rpc.generated import grpc_service_pb2 as pb
from app.rpc.generated import grpc_service_pb2_grpc as pb_grpc
from tests.conftest import assert_error, predict, running_app
from tests.e2e.conftest import free_port
from training.importing import save_model

MODEL = "mixed-v2"
# Rows as a V1 client sends them: a missing age and city, a city the model never saw.
ROWS: list[dict[str, Any]] = [
    {"age": 31.5, "city": "paris", "member": True},
    {"age": None, "city": None, "member": False},
    {"age": 70.0, "city": "marseille", "member": True},
    {"age": 18.0, "city": "lyon", "member": False},
]
DATATYPES = {"age": "FP64", "city": "BYTES", "member": "BOOL"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    models: Path = tmp_path_factory.mktemp("table-v2") / "models"
    rng = np.random.default_rng(0)
    n = 160
    table = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
            "member": rng.random(n) < 0.5,
        }
    )
    table.loc[::9, "age"] = np.nan
    table.loc[::7, "city"] = None
    label = np.where((table["city"] == "paris") | (table["age"] > 60), "yes", "no")
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", SimpleImputer(), ["age"]),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["city"],
                ),
                ("flag", "passthrough", ["member"]),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(table[:120], label[:120])
    save_model(model, MODEL, example=table[120:], models_dir=models)
    port = free_port()
    with running_app(models, grpc_port=port) as client:
        yield client, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(app: tuple[Any, str]) -> Any:
    return app[0]


@pytest.fixture(scope="module")
def v1(client: Any) -> np.ndarray:
    answer = predict(client, MODEL, ROWS)
    assert answer.status_code == 200, answer.text
    return np.array([list(p["probabilities"].values()) for p in answer.json()["predictions"]])


def _columns(rows: list[dict[str, Any]] = ROWS) -> list[dict[str, Any]]:
    return [
        {"name": n, "datatype": d, "shape": [len(rows)], "data": [r[n] for r in rows]}
        for n, d in DATATYPES.items()
    ]


def _infer(client: Any, inputs: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.post(f"/v2/models/{MODEL}/infer", json={"inputs": inputs}, **kwargs)


def _probabilities(answer: Any) -> np.ndarray:
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    return np.array(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])


def test_the_card_takes_missing_values_where_the_data_had_them(client: Any) -> None:
    card = client.get(f"/v1/models/{MODEL}").json()["card"]
    features = {f["name"]: f for f in card["input"]["features"]}
    assert card["input"]["kind"] == "table"
    assert features["age"]["missing"] and features["city"]["missing"]
    assert not features["member"]["missing"]


def test_metadata_lists_one_input_per_feature(client: Any) -> None:
    metadata = client.get(f"/v2/models/{MODEL}").json()
    inputs = {i["name"]: i for i in metadata["inputs"]}
    assert list(inputs) == ["age", "city", "member"]
    assert [(i["datatype"], i["shape"]) for i in inputs.values()] == [
        ("FP32", [-1]),
        ("BYTES", [-1]),
        ("BOOL", [-1]),
    ]
    assert inputs["age"]["parameters"]["nullable"] is True
    assert "nullable" not in inputs["member"]["parameters"]
    assert "FP64" in inputs["age"]["parameters"]["accepted_datatypes"]
    config = client.get(f"/v2/models/{MODEL}/config").json()
    assert [i["name"] for i in config["input"]] == ["age", "city", "member"]


def test_json_tensors_per_feature_answer_as_v1(client: Any, v1: np.ndarray) -> None:
    np.testing.assert_allclose(_probabilities(_infer(client, _columns())), v1, rtol=1e-6)
    # [N, 1] shapes, any order of inputs, any numeric datatype (FP32: float32 tolerance).
    inputs = [{**t, "shape": [len(ROWS), 1]} for t in reversed(_columns())]
    inputs[-1]["datatype"] = "FP32"
    np.testing.assert_allclose(_probabilities(_infer(client, inputs)), v1, atol=1e-5)


def test_the_json_object_form_still_works(client: Any, v1: np.ndarray) -> None:
    rows = {"name": "rows", "datatype": "BYTES", "shape": [len(ROWS)]}
    rows["data"] = [json.dumps(r) for r in ROWS]
    np.testing.assert_allclose(_probabilities(_infer(client, [rows])), v1, rtol=1e-6)


def test_binary_tensors_per_feature_answer_as_v1(client: Any, v1: np.ndarray) -> None:
    ages = [np.nan if r["age"] is None else r["age"] for r in ROWS]
    # Binary BYTES have no null: the missing city goes as JSON (inputs mix both ways).
    parts = [
        ("age", "FP64", np.array(ages, dtype="<f8").tobytes()),
        ("member", "BOOL", np.array([r["member"] for r in ROWS]).tobytes()),
    ]
    inputs = [
        {"name": n, "datatype": d, "shape": [len(ROWS)], "parameters": {"binary_data_size": len(b)}}
        for n, d, b in parts
    ]
    inputs.insert(1, _columns()[1])
    header = json.dumps(
        {
            "inputs": inputs,
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    answer = client.post(
        f"/v2/models/{MODEL}/infer",
        content=header + b"".join(b for _, _, b in parts),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    got = np.frombuffer(answer.content[length:], dtype="<f4").reshape(v1.shape)
    np.testing.assert_allclose(got, v1, atol=1e-6)


def test_grpc_tensors_per_feature_answer_as_v1(app: tuple[Any, str], v1: np.ndarray) -> None:
    present = ROWS[:1] + ROWS[2:]  # gRPC BYTES have no null: the rows with a city
    typed = pb.ModelInferRequest(model_name=MODEL)
    raw = pb.ModelInferRequest(model_name=MODEL)
    age = [r["age"] for r in present]
    city = [r["city"].encode() for r in present]
    member = [r["member"] for r in present]
    for name, datatype, field, values in [
        ("age", "FP64", "fp64_contents", age),
        ("city", "BYTES", "bytes_contents", city),
        ("member", "BOOL", "bool_contents", member),
    ]:
        getattr(
            typed.inputs.add(name=name, datatype=datatype, shape=[len(present)]).contents, field
        ).extend(values)
    for name, datatype, buffer in [
        ("age", "FP32", np.array(age, dtype="<f4").tobytes()),
        ("city", "BYTES", bytes_tensor(city)),
        ("member", "BOOL", np.array(member).tobytes()),
    ]:
        raw.inputs.add(name=name, datatype=datatype, shape=[len(present), 1])
        raw.raw_input_contents.append(buffer)
    expected = np.delete(v1, 1, axis=0)
    with grpc.insecure_channel(app[1]) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        typed_answer = stub.ModelInfer(typed, timeout=30)
        raw_answer = stub.ModelInfer(raw, timeout=30)
        metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=30)
        bad = pb.ModelInferRequest(model_name=MODEL)
        bad.inputs.add(name="age", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(bad, timeout=30)
    outputs = {o.name: i for i, o in enumerate(typed_answer.outputs)}
    got = np.array(typed_answer.outputs[outputs["probabilities"]].contents.fp32_contents)
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-6)
    raw_outputs = {o.name: i for i, o in enumerate(raw_answer.outputs)}
    buffer = raw_answer.raw_output_contents[raw_outputs["probabilities"]]
    got = np.frombuffer(buffer, dtype="<f4").reshape(expected.shape)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # ages sent as FP32
    assert [i.name for i in metadata.inputs] == ["age", "city", "member"]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing inputs city, member" in (refused.value.details() or "")


def test_each_wrong_request_is_a_400_naming_the_input(client: Any) -> None:
    extra = {"name": "colour", "datatype": "BYTES", "shape": [len(ROWS)], "data": ["red"] * 4}
    assert_error(_infer(client, [*_columns(), extra]), 400, "unknown input 'colour'")
    assert_error(_infer(client, _columns()[:2]), 400, "missing input member")
    short = _columns()
    short[1] = {"name": "city", "datatype": "BYTES", "shape": [1], "data": ["paris"]}
    assert_error(_infer(client, short), 400, "different lengths", "city has 1")
    strings = _columns()
    strings[0] = {"name": "age", "datatype": "BYTES", "shape": [4], "data": ["1"] * 4}
    assert_error(_infer(client, strings), 400, "input age", "not BYTES")


def test_a_missing_value_where_the_model_takes_none_is_refused_on_both_protocols(
    client: Any,
) -> None:
    rows = [dict(ROWS[0], member=None)]
    assert_error(predict(client, MODEL, rows), 422, "member")
    assert_error(_infer(client, _columns(rows)), 400, "input member is BOOL")
    nan = np.array([np.nan], dtype="<f8").tobytes()
    inputs: list[dict[str, Any]] = [
        {"name": "age", "datatype": "FP64", "shape": [1], "data": [1.0]},
        {"name": "city", "datatype": "BYTES", "shape": [1], "data": ["paris"]},
        {"name": "member", "datatype": "FP64", "shape": [1], "data": [1.0]},
    ]
    assert_error(_infer(client, inputs), 400, "input member", "takes BOOL, not FP64")
    inputs[0] = {"name": "age", "datatype": "FP64", "shape": [1]}
    inputs[0]["parameters"] = {"binary_data_size": 8}
    header = json.dumps({"inputs": [inputs[0], *_columns(ROWS[:1])[1:]]}).encode()
    answer = client.post(
        f"/v2/models/{MODEL}/infer",
        content=header + nan,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert answer.status_code == 200, answer.text  # NaN: a missing age, which it takes


def test_the_swagger_example_is_one_tensor_per_feature_and_works(client: Any) -> None:
    document = client.get("/openapi.json").json()
    body = document["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]
    example = body["content"]["application/json"]["examples"][MODEL]["value"]
    assert [i["name"] for i in example["inputs"]] == ["age", "city", "member"]
    answer = client.post(f"/v2/models/{MODEL}/infer", json=example)
    assert answer.status_code == 200, answer.text
