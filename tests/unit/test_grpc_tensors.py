"""The gRPC tensor codec (`app.rpc.tensors`): typed and raw contents, the REST codec's
checks on both, and the answer in the form the request used; the status mapping; the
committed generated code matches the locked grpcio-tools."""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest

from app.codecs.v2 import NUMERIC_TYPES, NUMPY_TYPES, TensorSpec
from app.errors import (
    BadRequest,
    DeadlineExceeded,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from app.rpc import status
from app.rpc.generated import grpc_service_pb2 as pb
from app.rpc.tensors import CONTENTS_FIELDS, decode_request, encode_response

# A classifier's V2 outputs (app.tasks.output_names).
OUTPUTS = ("label", "probabilities", "warnings")

TABULAR = TensorSpec("features", NUMERIC_TYPES, (4,), "FP32 [N, 4]")
TEXT = TensorSpec("text", ("BYTES",), (), "BYTES [N] of text")


def _request(
    datatype: str, shape: list[int], *, raw: bytes | None = None, name: str = "features"
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m", id="r1")
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return request


def _decode(request: pb.ModelInferRequest, spec: TensorSpec = TABULAR) -> np.ndarray:
    return decode_request(request, spec, "m", 1000, OUTPUTS).values


@pytest.mark.parametrize("datatype", [t for t in NUMERIC_TYPES if t != "FP16"])
def test_typed_contents_of_every_datatype_decode_to_its_numpy_type(datatype: str) -> None:
    request = _request(datatype, [2, 4])
    field = getattr(request.inputs[0].contents, CONTENTS_FIELDS[datatype])
    field.extend([1, 2, 3, 4, 5, 6, 7, 8])
    decoded = decode_request(request, TABULAR, "m", 1000, OUTPUTS)
    assert decoded.values.dtype == np.dtype(NUMPY_TYPES[datatype])
    assert decoded.values.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert not decoded.raw


@pytest.mark.parametrize("datatype", NUMERIC_TYPES)
def test_raw_contents_of_every_datatype_decode_little_endian(datatype: str) -> None:
    values = np.arange(8, dtype=NUMPY_TYPES[datatype]).reshape(2, 4)
    raw = values.astype(values.dtype.newbyteorder("<")).tobytes()
    decoded = decode_request(_request(datatype, [2, 4], raw=raw), TABULAR, "m", 1000, OUTPUTS)
    assert decoded.raw and decoded.values.tolist() == values.tolist()


def test_bytes_typed_and_raw() -> None:
    typed = _request("BYTES", [2], name="text")
    typed.inputs[0].contents.bytes_contents.extend([b"good", b"bad"])
    assert _decode(typed, TEXT).tolist() == [b"good", b"bad"]
    raw = struct.pack("<I", 4) + b"good" + struct.pack("<I", 3) + b"bad"
    assert _decode(_request("BYTES", [2], raw=raw, name="text"), TEXT).tolist() == [b"good", b"bad"]


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            lambda r: r.inputs[0].contents.fp32_contents.extend([1] * 4),
            ("not both", "raw_input_contents"),
        ),
        (lambda r: r.raw_input_contents.append(b"\0" * 16), ("one buffer per input",)),
    ],
    ids=["typed-and-raw", "two-buffers"],
)
def test_a_request_that_mixes_typed_and_raw_is_refused(
    change: object, fragments: tuple[str]
) -> None:
    request = _request("FP32", [1, 4], raw=b"\0" * 16)
    change(request)  # type: ignore[operator]
    with pytest.raises(BadRequest) as caught:
        _decode(request)
    for fragment in fragments:
        assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("request_", "error", "fragment"),
    [
        (_request("FP32", [1, 3], raw=b"\0" * 12), BadRequest, "must have shape [N, 4]"),
        (_request("FP32", [1, 4], raw=b"\0" * 12), BadRequest, "needs 16 bytes"),
        (_request("FP32", [1, 4]), BadRequest, "has no data"),
        (_request("FP32", [1001, 4]), PayloadTooLarge, "too many instances"),
        (_request("FP16", [1, 4]), BadRequest, "raw_input_contents"),
        (_request("STRING", [1, 4]), BadRequest, "unknown datatype"),
        (_request("FP32", [1, 4], name="x"), BadRequest, "named 'features'"),
        (_request("FP32", [0, 4]), BadRequest, "empty"),
        (
            _request("FP32", [1, 4], raw=np.array([1, np.nan, 0, 0], "<f4").tobytes()),
            BadRequest,
            "finite",
        ),
    ],
    ids=[
        "shape",
        "raw-size",
        "no-data",
        "too-many",
        "fp16-typed",
        "datatype",
        "name",
        "empty",
        "nan",
    ],
)
def test_refusals_share_the_rest_codecs_words(
    request_: pb.ModelInferRequest, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as caught:
        _decode(request_)
    assert fragment in str(caught.value)


def test_typed_values_are_checked_like_json_ones() -> None:
    wrong_field = _request("FP32", [1, 4])
    wrong_field.inputs[0].contents.int_contents.extend([1, 2, 3, 4])
    with pytest.raises(BadRequest, match=r"contents\.fp32_contents; found contents\.int_contents"):
        _decode(wrong_field)
    out_of_range = _request("UINT8", [1, 4])
    out_of_range.inputs[0].contents.uint_contents.extend([1, 2, 3, 300])
    with pytest.raises(BadRequest, match="300 is out of range for UINT8"):
        _decode(out_of_range)
    count = _request("FP64", [1, 4])
    count.inputs[0].contents.fp64_contents.extend([1, 2, 3])
    with pytest.raises(BadRequest, match="needs 4 values"):
        _decode(count)
    infinite = _request("FP64", [1, 4])
    infinite.inputs[0].contents.fp64_contents.extend([1, 2, 3, float("inf")])
    with pytest.raises(BadRequest, match="finite"):
        _decode(infinite)


def test_hostile_bytes_lengths_are_refused() -> None:
    claims_more = struct.pack("<I", 2**31) + b"x"
    with pytest.raises(BadRequest, match="claims"):
        _decode(_request("BYTES", [1], raw=claims_more, name="text"), TEXT)
    cut = struct.pack("<I", 1) + b"x" + b"\0\0"
    with pytest.raises(BadRequest, match="length prefix"):
        _decode(_request("BYTES", [1], raw=cut, name="text"), TEXT)


def test_requested_outputs_follow_the_rest_rules() -> None:
    request = _request("FP32", [1, 4], raw=b"\0" * 16)
    request.outputs.add(name="probabilities")
    assert decode_request(request, TABULAR, "m", 1000, OUTPUTS).outputs == ["probabilities"]
    request.outputs.add(name="nope")
    with pytest.raises(BadRequest, match="unknown output 'nope'"):
        _decode(request)
    classification = _request("FP32", [1, 4], raw=b"\0" * 16)
    classification.outputs.add(name="label").parameters["classification"].int64_param = 2
    with pytest.raises(BadRequest, match="classification extension"):
        _decode(classification)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_the_answer_uses_the_form_of_the_request(raw: bool) -> None:
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1]])
    tensors = [("label", np.array(["yes", "no"], dtype=object)), ("probabilities", probabilities)]
    response = encode_response("m", 3, "r1", tensors, raw)
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "r1")
    label, probs = response.outputs
    assert (label.datatype, list(label.shape)) == ("BYTES", [2])
    assert (probs.datatype, list(probs.shape)) == ("FP32", [2, 2])
    if raw:
        labels_raw, probs_raw = response.raw_output_contents
        assert labels_raw == struct.pack("<I", 3) + b"yes" + struct.pack("<I", 2) + b"no"
        assert np.frombuffer(probs_raw, "<f4").tolist() == pytest.approx([0.2, 0.8, 0.9, 0.1])
    else:
        assert not response.raw_output_contents
        assert list(label.contents.bytes_contents) == [b"yes", b"no"]
        assert list(probs.contents.fp32_contents) == pytest.approx([0.2, 0.8, 0.9, 0.1])


def test_errors_map_to_grpc_codes_with_the_retry_delay() -> None:
    assert status.grpc_code(BadRequest("x")) is grpc.StatusCode.INVALID_ARGUMENT
    assert status.grpc_code(NotFound("x")) is grpc.StatusCode.NOT_FOUND
    assert status.grpc_code(PayloadTooLarge("x")) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.grpc_code(DeadlineExceeded("x")) is grpc.StatusCode.DEADLINE_EXCEEDED
    overloaded = Unavailable("busy", retry_after_s=3)
    assert status.grpc_code(overloaded) is grpc.StatusCode.UNAVAILABLE
    assert dict(status.trailing_metadata(overloaded)) == {
        "retry-after": "3",
        "grpc-retry-pushback-ms": "3000",
    }
    assert status.trailing_metadata(BadRequest("x")) == ()
