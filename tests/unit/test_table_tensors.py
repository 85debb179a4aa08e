"""A table model's V2 input as one tensor per feature (issue 22): the codec's checks of the
named inputs (REST JSON, REST binary, gRPC typed and raw) and the `table` kind's rows, equal
to the rows of the JSON-object form for the same instances."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.codecs.v2 import (
    NUMERIC_TYPES,
    bytes_tensor,
    decode_named_inputs,
    parse_request,
    takes_named_inputs,
)
from app.errors import BadRequest, InvalidInput, PayloadTooLarge
from app.kinds import InputLimits, make_adapter
from app.kinds.base import InputAdapter
from app.rpc.generated import grpc_service_pb2 as pb
from app.rpc.tensors import decode_named_request
from app.schemas.card import CardExample, Feature, ModelCard, TableInput

FEATURES = [
    Feature(name="age", missing=True),
    Feature(name="income"),
    Feature(name="city", dtype="string", categories=["paris", "lyon"], missing=True),
    Feature(name="member", dtype="boolean"),
]
ROWS: list[dict[str, Any]] = [
    {"age": 31.5, "income": 1200.0, "city": "paris", "member": True},
    {"age": None, "income": 800.0, "city": None, "member": False},
    {"age": 70.0, "income": 0.0, "city": "nice", "member": True},
]


def _adapter(max_instances: int = 1000) -> InputAdapter:
    card = ModelCard(
        name="mixed",
        version=1,
        description="d",
        framework="sklearn",
        task="binary-classification",
        input=TableInput(features=FEATURES),
        labels=["no", "yes"],
        model_file="model.skops",
        artifacts={"model.skops": "0" * 64},
        hyperparameters={},
        library_versions={},
        created_at=datetime.now(UTC),
        examples=[CardExample(instance=ROWS[0], label="yes")],
    )
    return make_adapter(card, Path("."), InputLimits(max_instances=max_instances))


def _columns(rows: list[dict[str, Any]] = ROWS) -> list[dict[str, Any]]:
    datatypes = {"age": "FP64", "income": "FP64", "city": "BYTES", "member": "BOOL"}
    return [
        {"name": n, "datatype": d, "shape": [len(rows)], "data": [r[n] for r in rows]}
        for n, d in datatypes.items()
    ]


def _rows(inputs: list[dict[str, Any]], binary: bytes = b"", adapter: Any = None) -> list[Any]:
    adapter = adapter or _adapter()
    request = parse_request(json.dumps({"inputs": inputs}).encode())
    tensors = decode_named_inputs(
        request, binary, adapter.feature_specs, "mixed", adapter.limits.max_instances,
        adapter.tensor_spec,
    )  # fmt: skip
    return adapter.feature_rows(tensors, None)  # type: ignore[no-any-return]


def _v1_rows(adapter: InputAdapter, rows: list[dict[str, Any]] = ROWS) -> list[Any]:
    instances = adapter.request_model.model_validate({"instances": rows}).instances  # type: ignore[attr-defined]
    return [adapter.to_row(instance) for instance in instances]


def test_the_kind_declares_one_input_per_feature() -> None:
    adapter = _adapter()
    specs = {spec.name: spec for spec in adapter.feature_specs}
    assert list(specs) == ["age", "income", "city", "member"]
    assert specs["age"].datatypes[0] == "FP32" and set(specs["age"].datatypes) == set(NUMERIC_TYPES)
    assert specs["city"].datatypes == ("BYTES",) and specs["member"].datatypes == ("BOOL",)
    assert specs["age"].nullable and not specs["income"].nullable
    assert "seen: paris, lyon" in specs["city"].help
    assert takes_named_inputs(["age", "city"], adapter.tensor_spec, adapter.feature_specs)
    assert not takes_named_inputs(["rows"], adapter.tensor_spec, adapter.feature_specs)
    assert not takes_named_inputs(["rows"], adapter.tensor_spec, ())


def test_json_columns_give_the_rows_of_the_json_object_form() -> None:
    adapter = _adapter()
    assert _rows(_columns(), adapter=adapter) == _v1_rows(adapter)
    # An [N, 1] shape is taken too, and the inputs in any order.
    inputs = [{**tensor, "shape": [3, 1]} for tensor in reversed(_columns())]
    assert _rows(inputs) == _v1_rows(adapter)


@pytest.mark.parametrize("datatype", NUMERIC_TYPES)
def test_every_numeric_datatype_is_a_number(datatype: str) -> None:
    inputs = _columns()
    inputs[1] = {"name": "income", "datatype": datatype, "shape": [3], "data": [1, 2, 3]}
    rows = _rows(inputs)
    assert [row[1] for row in rows] == [1.0, 2.0, 3.0]
    assert all(type(row[1]) is float for row in rows)


def test_binary_columns_give_the_same_rows_and_nan_is_missing() -> None:
    adapter = _adapter()
    age = np.array([31.5, np.nan, 70.0], dtype="<f4").tobytes()
    income = np.array([1200, 800, 0], dtype="<i8").tobytes()
    city = bytes_tensor([b"paris", b"", b"nice"])
    member = np.array([True, False, True]).tobytes()
    parts = [("age", "FP32", age), ("income", "INT64", income), ("city", "BYTES", city)]
    parts.append(("member", "BOOL", member))
    inputs = [
        {"name": n, "datatype": d, "shape": [3], "parameters": {"binary_data_size": len(b)}}
        for n, d, b in parts
    ]
    rows = _rows(inputs, b"".join(b for _, _, b in parts), adapter)
    expected = [dict(r) for r in ROWS]
    expected[1]["city"] = ""  # binary BYTES have no null: an empty string is a string
    assert rows == _v1_rows(adapter, expected)
    # Binary and JSON inputs mix: JSON ones declare no binary data.
    mixed = [inputs[0], *_columns()[1:]]
    assert _rows(mixed, age, adapter)[1][0] is None


def test_grpc_typed_and_raw_contents_give_the_same_rows() -> None:
    adapter = _adapter()
    typed = pb.ModelInferRequest(model_name="mixed")
    for name, datatype, field, values in [
        ("age", "FP64", "fp64_contents", [31.5, float("nan"), 70.0]),
        ("income", "INT32", "int_contents", [1200, 800, 0]),
        ("city", "BYTES", "bytes_contents", [b"paris", b"lyon", b"nice"]),
        ("member", "BOOL", "bool_contents", [True, False, True]),
    ]:
        tensor = typed.inputs.add(name=name, datatype=datatype, shape=[3])
        getattr(tensor.contents, field).extend(values)
    raw = pb.ModelInferRequest(model_name="mixed")
    for name, datatype, buffer in [
        ("member", "BOOL", np.array([True, False, True]).tobytes()),
        ("age", "FP32", np.array([31.5, np.nan, 70.0], dtype="<f4").tobytes()),
        ("income", "FP64", np.array([1200, 800, 0], dtype="<f8").tobytes()),
        ("city", "BYTES", bytes_tensor([b"paris", b"lyon", b"nice"])),
    ]:
        raw.inputs.add(name=name, datatype=datatype, shape=[3, 1])
        raw.raw_input_contents.append(buffer)
    expected = [dict(r) for r in ROWS]
    expected[1]["city"] = "lyon"
    for request, is_raw in ((typed, False), (raw, True)):
        decoded = decode_named_request(
            request, adapter.feature_specs, "mixed", 1000, ["label"], adapter.tensor_spec
        )
        assert decoded.raw is is_raw and decoded.outputs == ["label"]
        assert adapter.feature_rows(decoded.tensors, None) == _v1_rows(adapter, expected)


def _refused(inputs: list[dict[str, Any]], *fragments: str, error: type = BadRequest) -> None:
    with pytest.raises(error) as caught:
        _rows(inputs)
    for fragment in fragments:
        message = str(getattr(caught.value, "message", caught.value))
        assert fragment in message, message


def test_an_unknown_input_is_refused_naming_it_and_the_features() -> None:
    inputs = [*_columns(), {"name": "colour", "datatype": "BYTES", "shape": [3], "data": ["a"] * 3}]
    _refused(inputs, "unknown input 'colour'", "age, income, city, member", "'rows'")


def test_a_missing_feature_is_refused_naming_it() -> None:
    _refused(_columns()[:2], "missing inputs city, member")
    _refused([c for c in _columns() if c["name"] != "income"], "missing input income:")


def test_a_feature_given_twice_is_refused() -> None:
    _refused([*_columns(), _columns()[0]], "input age is given twice")


def test_tensors_of_different_lengths_are_refused() -> None:
    inputs = _columns()
    inputs[2] = {"name": "city", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}
    _refused(inputs, "different lengths", "age has 3", "city has 2")


def test_a_datatype_that_does_not_fit_the_feature_is_refused() -> None:
    inputs = _columns()
    inputs[0] = {"name": "age", "datatype": "BYTES", "shape": [3], "data": ["1", "2", "3"]}
    _refused(inputs, "input age", "not BYTES")
    inputs = _columns()
    inputs[3] = {"name": "member", "datatype": "INT8", "shape": [3], "data": [1, 0, 1]}
    _refused(inputs, "input member", "takes BOOL, not INT8")
    inputs = _columns()
    inputs[2] = {"name": "city", "datatype": "BYTES", "shape": [3], "data": [1, 2, 3]}
    _refused(inputs, "input city is BYTES, so its data must be strings")
    inputs = _columns()
    inputs[1] = {"name": "income", "datatype": "FP64", "shape": [3], "data": ["a", 1, 2]}
    _refused(inputs, "input income is FP64, so its data must be numbers")


def test_a_bad_shape_or_an_empty_or_oversized_batch_is_refused() -> None:
    inputs = [{**tensor, "shape": [1, 3]} for tensor in _columns()]
    _refused(inputs, "input age", "must have shape [N] (or [N, 1])")
    empty = [{**tensor, "shape": [0], "data": []} for tensor in _columns()]
    _refused(empty, "is empty")
    with pytest.raises(PayloadTooLarge):
        _rows(_columns(), adapter=_adapter(max_instances=2))


def test_null_or_nan_where_the_feature_takes_no_missing_value_names_the_element() -> None:
    inputs = _columns()
    inputs[1] = {"name": "income", "datatype": "FP64", "shape": [3], "data": [1.0, None, 2.0]}
    _refused(inputs, "input income is FP64, so its data must be numbers; found None")
    inputs = _columns()
    inputs[3] = {"name": "member", "datatype": "BOOL", "shape": [3], "data": [True, None, True]}
    _refused(inputs, "input member is BOOL")
    nan = np.array([1.0, np.nan, 2.0], dtype="<f8").tobytes()
    binary = [c for c in _columns() if c["name"] != "income"]
    binary.append(
        {"name": "income", "datatype": "FP64", "shape": [3], "parameters": {"binary_data_size": 24}}
    )
    with pytest.raises(BadRequest, match="input income: values must be finite"):
        _rows(binary, nan)
    # Infinity is never a missing value.
    inf = np.array([1.0, np.inf, 2.0], dtype="<f8").tobytes()
    binary[0] = {
        "name": "age",
        "datatype": "FP64",
        "shape": [3],
        "parameters": {"binary_data_size": 24},
    }
    binary[-1] = _columns()[1]
    with pytest.raises(BadRequest, match=r"input age: values must be finite \(no Infinity\)"):
        _rows(binary, inf)


def test_a_kind_level_refusal_names_the_element() -> None:
    adapter = _adapter()
    specs = {spec.name: spec for spec in adapter.feature_specs}
    assert specs
    tensors = {
        "age": ("FP64", np.array([1.0], dtype=np.float64)),
        "income": ("FP64", np.array([np.nan])),
        "city": ("BYTES", np.array([b"paris"], dtype=object)),
        "member": ("BOOL", np.array([True])),
    }
    with pytest.raises(InvalidInput, match=r"input income\[0\] is missing \(NaN\)"):
        adapter.feature_rows(tensors, None)
    tensors["income"] = ("FP64", np.array([1e39]))
    with pytest.raises(InvalidInput, match=r"input income\[0\] is out of range"):
        adapter.feature_rows(tensors, None)
    tensors["income"] = ("FP64", np.array([1.0]))
    tensors["city"] = ("BYTES", np.array([b"\xff\xfe"], dtype=object))
    with pytest.raises(InvalidInput, match=r"input city\[0\] is not UTF-8"):
        adapter.feature_rows(tensors, None)
    tensors["city"] = ("BYTES", np.array(["x" * 10_001], dtype=object))
    with pytest.raises(InvalidInput, match=r"input city\[0\] has 10001 characters"):
        adapter.feature_rows(tensors, None)


def test_binary_sizes_must_add_up() -> None:
    age = np.array([1.0, 2.0, 3.0], dtype="<f8").tobytes()
    inputs = [c for c in _columns() if c["name"] != "age"]
    inputs.insert(
        0, {"name": "age", "datatype": "FP64", "shape": [3], "parameters": {"binary_data_size": 40}}
    )
    with pytest.raises(BadRequest, match="binary_data_size is 40, but only 24 bytes"):
        _rows(inputs, age)
    inputs[0]["parameters"] = {"binary_data_size": 24}
    with pytest.raises(BadRequest, match="8 bytes follow the JSON header beyond"):
        _rows(inputs, age + b"12345678")


def test_the_one_input_form_is_unchanged() -> None:
    adapter = _adapter()
    elements = np.array([json.dumps(r) for r in ROWS], dtype=object)
    assert adapter.tensor_rows("BYTES", elements, None) == _v1_rows(adapter)
