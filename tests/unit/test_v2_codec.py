"""The V2 tensor codec on its own: no app, no model (app.codecs.v2)."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from app.codecs.v2 import (
    DATATYPES,
    HEADER_LENGTH,
    NUMPY_TYPES,
    TensorSpec,
    bytes_tensor,
    check_shape,
    decode_input,
    decompress_body,
    encode_response,
    parse_request,
    requested_outputs,
    split_body,
    tensor_from_binary,
    tensor_from_json,
    utf8_elements,
    warnings_json,
)
from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

FEATURES = TensorSpec("features", ("FP32", "INT32"), (3,), "FP32 [N, 3]")
TEXT = TensorSpec("text", ("BYTES",), (), "BYTES [N]")
INPUT = {"name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}


def _request(**tensor: Any) -> Any:
    return parse_request(orjson.dumps({"inputs": [{"name": "features", **tensor}]}))


# ---------------------------------------------------------------- datatypes
@pytest.mark.parametrize("datatype", sorted(NUMPY_TYPES))
def test_every_numeric_datatype_decodes_to_its_numpy_type(datatype: str) -> None:
    data = [True, False] if datatype == "BOOL" else [1, 2]
    array = tensor_from_json(data, datatype, (2,), "x")
    assert array.dtype == np.dtype(NUMPY_TYPES[datatype])
    assert array.tolist() == data


def test_bytes_is_a_datatype_and_decodes_to_objects() -> None:
    assert "BYTES" in DATATYPES
    array = tensor_from_json(["a", "b"], "BYTES", (2,), "text")
    assert array.dtype == object and array.tolist() == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "datatype", "message"),
    [
        ([1.5, 2], "INT32", "must be integers; found 1.5 at flat index 0"),
        ([300, 1], "UINT8", "300 is out of range for UINT8"),
        (["1", 2], "FP32", "must be numbers"),
        ([1, 2], "BYTES", "must be strings"),
        ([1e39, 0], "FP32", "within ±3.403e+38 for FP32"),
        ([True, 1], "INT8", "must be integers"),
    ],
)
def test_json_values_must_fit_the_datatype(data: list[Any], datatype: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("+", r"\+").replace("(", r"\(")):
        tensor_from_json(data, datatype, (2,), "x")


# ---------------------------------------------------------------- shapes
def test_flat_and_nested_data_give_the_same_tensor() -> None:
    flat = tensor_from_json([1, 2, 3, 4, 5, 6], "FP32", (2, 3), "x")
    nested = tensor_from_json([[1, 2, 3], [4, 5, 6]], "FP32", (2, 3), "x")
    assert flat.shape == nested.shape == (2, 3)
    assert np.array_equal(flat, nested)


def test_value_count_and_nesting_must_follow_the_shape() -> None:
    with pytest.raises(BadRequest, match=r"shape \[2, 3\] needs 6 values, data has 5"):
        tensor_from_json([1, 2, 3, 4, 5], "FP32", (2, 3), "x")
    with pytest.raises(BadRequest, match="does not have the shape"):
        tensor_from_json([[1, 2], [3, 4, 5, 6]], "FP32", (2, 3), "x")
    with pytest.raises(BadRequest, match="mixes lists and values"):
        tensor_from_json([[1, 2, 3], 4, 5, 6], "FP32", (2, 3), "x")


def test_check_shape_follows_the_spec_and_the_instance_limit() -> None:
    check_shape(FEATURES, "FP32", (2, 3), "m", 10)
    check_shape(TEXT, "BYTES", (2, 1), "m", 10)  # Triton clients send text as [N, 1]
    with pytest.raises(BadRequest, match=r"must have shape \[N, 3\] for FP32, got \[2, 4\]"):
        check_shape(FEATURES, "FP32", (2, 4), "m", 10)
    with pytest.raises(BadRequest, match="is empty"):
        check_shape(FEATURES, "FP32", (0, 3), "m", 10)
    with pytest.raises(PayloadTooLarge, match="too many instances: 11, at most 10"):
        check_shape(FEATURES, "FP32", (11, 3), "m", 10)


def test_decode_input_checks_name_and_datatype_against_the_spec() -> None:
    request = _request(datatype="FP32", shape=[1, 3], data=[1, 2, 3])
    datatype, values = decode_input(request, b"", FEATURES, "m", 10)
    assert datatype == "FP32" and values.shape == (1, 3)
    wrong_name = parse_request(
        orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]})
    )
    with pytest.raises(BadRequest, match="takes one input, named 'features'"):
        decode_input(wrong_name, b"", FEATURES, "m", 10)
    with pytest.raises(BadRequest, match="takes FP32, INT32, not FP64"):
        decode_input(_request(datatype="FP64", shape=[1, 3], data=[1, 2, 3]), b"", FEATURES, "m", 9)
    with pytest.raises(BadRequest, match="unknown datatype 'FP8'"):
        decode_input(_request(datatype="FP8", shape=[1, 3], data=[1, 2, 3]), b"", FEATURES, "m", 9)


# ---------------------------------------------------------------- binary extension
def test_binary_numbers_are_little_endian_row_major() -> None:
    values = np.arange(6, dtype="<f4").reshape(2, 3)
    array = tensor_from_binary(values.tobytes(), "FP32", (2, 3), "x")
    assert np.array_equal(array, values)
    with pytest.raises(BadRequest, match="needs 24 bytes of binary data, got 20"):
        tensor_from_binary(values.tobytes()[:20], "FP32", (2, 3), "x")
    with pytest.raises(BadRequest, match="finite"):
        tensor_from_binary(np.array([np.nan], dtype="<f4").tobytes(), "FP32", (1,), "x")


def test_repeated_bytes_elements_are_each_framed_in_place() -> None:
    values = [b"cat", b"dog", b"cat", b"", b"cat"]
    raw = bytes_tensor(values)
    assert raw == b"".join(struct.pack("<I", len(v)) + v for v in values)
    assert tensor_from_binary(raw, "BYTES", (5,), "label").tolist() == values
    labels = np.array(["setosa", "virginica", "setosa", "é"], dtype=object)
    assert utf8_elements(labels.reshape(2, 2)) == [b"setosa", b"virginica", b"setosa", b"\xc3\xa9"]


def test_warnings_output_is_one_json_list_per_row() -> None:
    far = SimpleNamespace(code="far", message="unlike the training data")
    odd = SimpleNamespace(code="odd", message="two digits")
    texts = warnings_json([[], [far], [far, odd], [far]], 6)  # rows past the list: none
    assert [json.loads(text) for text in texts] == [
        [],
        [{"code": "far", "message": "unlike the training data"}],
        [
            {"code": "far", "message": "unlike the training data"},
            {"code": "odd", "message": "two digits"},
        ],
        [{"code": "far", "message": "unlike the training data"}],
        [],
        [],
    ]
    assert warnings_json([[far], [odd]], 1) == [texts[1]]  # never more rows than asked


def test_binary_bytes_elements_are_length_prefixed_both_ways() -> None:
    raw = bytes_tensor([b"one", b"", b"three"])
    assert raw == struct.pack("<I", 3) + b"one" + struct.pack("<I", 0) + struct.pack("<I", 5) + (
        b"three"
    )
    array = tensor_from_binary(raw, "BYTES", (3,), "text")
    assert array.tolist() == [b"one", b"", b"three"]
    with pytest.raises(BadRequest, match="ends inside a length prefix"):
        tensor_from_binary(raw + b"\x01", "BYTES", (3,), "text")
    with pytest.raises(BadRequest, match="claims 9 bytes"):
        tensor_from_binary(struct.pack("<I", 9) + b"abc", "BYTES", (1,), "text")
    with pytest.raises(BadRequest, match="needs 2 elements, the binary data holds 3"):
        tensor_from_binary(raw, "BYTES", (2,), "text")


def test_a_binary_request_splits_at_the_header_length() -> None:
    values = np.ones((1, 3), dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP32",
                    "shape": [1, 3],
                    "parameters": {"binary_data_size": len(values)},
                }
            ]
        }
    )
    json_part, binary = split_body(header + values, str(len(header)))
    assert (json_part, binary) == (header, values)
    _, array = decode_input(parse_request(json_part), binary, FEATURES, "m", 10)
    assert array.tolist() == [[1.0, 1.0, 1.0]]
    with pytest.raises(BadRequest, match=HEADER_LENGTH):
        split_body(header, "ten")
    with pytest.raises(BadRequest, match="but the body has"):
        split_body(header, str(len(header) + 1))
    with pytest.raises(BadRequest, match="binary_data_size is 12, but 11 bytes follow"):
        decode_input(parse_request(json_part), binary[:-1], FEATURES, "m", 10)
    with pytest.raises(BadRequest, match="no input declares them"):
        decode_input(
            _request(datatype="FP32", shape=[1, 3], data=[1, 2, 3]), b"x", FEATURES, "m", 9
        )


# ---------------------------------------------------------------- bodies and documents
def test_gzip_and_deflate_bodies_inflate_within_the_limit() -> None:
    body = b'{"inputs": []}'
    assert decompress_body(gzip.compress(body), "gzip", 100) == body
    assert decompress_body(zlib.compress(body), "deflate", 100) == body
    assert decompress_body(body, None, 100) == body
    with pytest.raises(PayloadTooLarge):
        decompress_body(gzip.compress(b"0" * 1000), "gzip", 100)
    with pytest.raises(UnsupportedMediaType, match="br is not supported"):
        decompress_body(body, "br", 100)
    with pytest.raises(BadRequest, match="truncated"):
        decompress_body(gzip.compress(body)[:-4], "gzip", 100)
    counted: list[int] = []
    decompress_body(gzip.compress(b"1,2,3"), "gzip", 100, counted.append)
    assert counted == [3]


def test_parse_request_names_the_problem() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_request(b"{")
    with pytest.raises(BadRequest, match="inputs"):
        parse_request(b"{}")


def test_outputs_default_to_all_three_and_follow_the_request() -> None:
    request = _request(datatype="FP32", shape=[1, 3], data=[1, 2, 3])
    assert requested_outputs(request) == [
        ("label", False),
        ("probabilities", False),
        ("warnings", False),
    ]
    asked = parse_request(
        orjson.dumps(
            {
                "inputs": [INPUT],
                "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
            }
        )
    )
    assert requested_outputs(asked) == [("probabilities", True)]
    for outputs, message in (
        ([{"name": "scores"}], "unknown output 'scores'"),
        ([{"name": "label"}, {"name": "label"}], "asked for twice"),
        ([], "outputs is empty"),
    ):
        with pytest.raises(BadRequest, match=message):
            requested_outputs(parse_request(orjson.dumps({"inputs": [INPUT], "outputs": outputs})))


def test_encode_response_json_and_binary() -> None:
    probabilities = np.array([[0.25, 0.75], [0.9, 0.1]])
    body, headers, media_type = encode_response(
        "m", 3, "req-1", ["a", "b"], probabilities, [("label", False), ("probabilities", False)]
    )
    assert (headers, media_type) == ({}, "application/json")
    document = json.loads(body)
    assert document["model_name"] == "m" and document["model_version"] == "3"
    assert document["id"] == "req-1"
    label, scores = document["outputs"]
    assert label == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["b", "a"]}
    assert scores["shape"] == [2, 2] and scores["data"] == pytest.approx([0.25, 0.75, 0.9, 0.1])
    body, headers, media_type = encode_response(
        "m", 3, None, ["a", "b"], probabilities, [("probabilities", True), ("label", True)]
    )
    length = int(headers[HEADER_LENGTH])
    header = json.loads(body[:length])
    assert "id" not in header and media_type == "application/octet-stream"
    blob = body[length:]
    size = header["outputs"][0]["parameters"]["binary_data_size"]
    assert np.frombuffer(blob[:size], dtype="<f4").tolist() == pytest.approx([0.25, 0.75, 0.9, 0.1])
    assert tensor_from_binary(blob[size:], "BYTES", (2,), "label").tolist() == [b"b", b"a"]
