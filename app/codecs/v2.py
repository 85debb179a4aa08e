"""The Open Inference Protocol's (V2) tensor codec: pure functions, no model, no HTTP.

Bytes in, NumPy arrays out, and back: JSON `data` (flat or nested) checked against the
tensor's datatype and shape, Triton's binary tensor extension (a JSON header of
`Inference-Header-Content-Length` bytes followed by the raw little-endian tensors; BYTES
elements each preceded by a 4-byte little-endian length), gzip/deflate bodies, the request
document, the `outputs` it asks for, and the response document. `app.protocols.v2` (HTTP) uses
it today; a gRPC front end or an explainer reuses it as is.

Every error here is a BadRequest (400, the protocol's convention for a request the client
can fix), PayloadTooLarge (413) or UnsupportedMediaType (415), with a message that says what
to change.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from app.schemas import problems
from app.schemas.v2 import InferenceRequest, RequestOutput

SERVER_NAME = "synergy-serve"
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]
OUTPUT_NAMES = ("label", "probabilities", "warnings")
HEADER_LENGTH = "Inference-Header-Content-Length"
INFLATE_CHUNK_BYTES = 1024 * 1024

NUMPY_TYPES: dict[str, Any] = {
    "BOOL": np.bool_,
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
DATATYPES = (*NUMPY_TYPES, "BYTES")
INTEGER_TYPES = tuple(t for t in NUMPY_TYPES if "INT" in t)
FLOAT_TYPES = ("FP16", "FP32", "FP64")
NUMERIC_TYPES = INTEGER_TYPES + FLOAT_TYPES


@dataclass(frozen=True)
class TensorSpec:
    """The one input tensor a model version takes (its adapter says which)."""

    name: str
    datatypes: tuple[str, ...]
    # Shape of one instance for numeric datatypes; BYTES tensors hold one element per instance.
    row_shape: tuple[int, ...]
    help: str

    @property
    def metadata_datatype(self) -> str:
        return "FP32" if "FP32" in self.datatypes else self.datatypes[0]


def decompress_body(
    body: bytes,
    content_encoding: str | None,
    limit_bytes: int,
    count_values: Callable[[int], None] | None = None,
) -> bytes:
    """The request body without its Content-Encoding (gzip or deflate), at most limit bytes.

    Inflated a megabyte at a time; `count_values`, when given, is called with the number of
    JSON values seen so far (commas + 1) after each, and may raise to stop early: a few KB
    that inflate to millions of values are refused after the first megabytes, not all eight.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding} is not supported; send the body uncompressed, or "
            "gzip/deflate"
        )
    window = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    decompressor = zlib.decompressobj(window)
    chunks: list[bytes] = []
    size = commas = 0
    pending = body
    try:
        while True:
            chunk = decompressor.decompress(pending, INFLATE_CHUNK_BYTES)
            pending = decompressor.unconsumed_tail
            chunks.append(chunk)
            size += len(chunk)
            if size > limit_bytes:
                raise PayloadTooLarge(
                    f"the decompressed body is over the limit of {limit_bytes} bytes; split the "
                    "request"
                )
            if count_values is not None:
                commas += chunk.count(b",")
                count_values(commas + 1)
            if not pending and len(chunk) < INFLATE_CHUNK_BYTES:
                break
    except zlib.error as exc:
        raise BadRequest(
            f"the body is not valid {encoding} data (corrupt or truncated); compress it again"
        ) from exc
    if not decompressor.eof:
        raise BadRequest(f"the {encoding} body is truncated; send the complete compressed data")
    if decompressor.unused_data:
        raise BadRequest(
            f"the body has data after the end of the {encoding} stream (several members, or "
            "trailing bytes); send one compressed stream"
        )
    return b"".join(chunks)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary data) by the Inference-Header-Content-Length header."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise BadRequest(
            f"{HEADER_LENGTH} must be the JSON header's length in bytes, got {header_length!r}"
        ) from None
    if not 0 <= length <= len(body):
        raise BadRequest(
            f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes; it must be the "
            "length of the JSON part that starts the body"
        )
    return body[:length], body[length:]


def parse_request(header: bytes) -> InferenceRequest:
    """The JSON part of an infer request, validated (400 with the problems otherwise)."""
    try:
        return InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors[0]["type"] == "json_invalid":
            raise BadRequest(
                f"the body is not valid JSON ({errors[0]['msg']}); send an inference request "
                '{"inputs": [{"name": ..., "shape": [...], "datatype": ..., "data": [...]}]}'
            ) from None
        raise BadRequest(
            problems.describe(
                errors,
                detail=lambda e: f" (got {_short(e['input'])})" if e["type"] != "missing" else "",
            )
        ) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _flatten(data: Any, name: str) -> tuple[list[Any], bool]:
    """(elements, was_nested) of tensor data given flat or as nested lists."""
    if not isinstance(data, list):
        raise BadRequest(
            f"input {name}: data must be a list of values (flat, or nested by the shape), "
            f"got {_short(data)}"
        )
    flat, nested = data, False
    while flat and any(isinstance(item, list) for item in flat):
        if not all(isinstance(item, list) for item in flat):
            raise BadRequest(
                f"input {name}: data mixes lists and values at one level; nest it evenly by the "
                "shape, or send it flat"
            )
        flat, nested = [item for sub in flat for item in sub], True
    return flat, nested


_JSON_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "BOOL": ("true/false", lambda v: type(v) is bool),
    "BYTES": ("strings", lambda v: type(v) is str),
    **{t: ("integers", lambda v: type(v) is int) for t in INTEGER_TYPES},
    **{t: ("numbers", lambda v: type(v) in (int, float)) for t in FLOAT_TYPES},
}


def tensor_from_json(data: Any, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The tensor a JSON `data` field holds, checked against datatype and shape."""
    flat, nested = _flatten(data, name)
    size = math.prod(shape)
    if len(flat) != size:
        raise BadRequest(
            f"input {name}: shape {list(shape)} needs {size} values, data has {len(flat)}"
        )
    kind, is_kind = _JSON_KINDS[datatype]
    for index, value in enumerate(flat):
        if not is_kind(value):
            raise BadRequest(
                f"input {name} is {datatype}, so its data must be {kind}; found {_short(value)} "
                f"at flat index {index}"
            )
    if nested:
        # Ragged nesting can have the right total: its structure must follow the shape too.
        try:
            structure = np.array(data, dtype=object if datatype == "BYTES" else None).shape
        except ValueError:
            structure = ()
        if structure != shape:
            raise BadRequest(
                f"input {name}: the nested data does not have the shape {list(shape)}; nest it "
                "by the shape or send it flat"
            )
    if datatype == "BYTES":
        return np.array(flat, dtype=object).reshape(shape)
    dtype = np.dtype(NUMPY_TYPES[datatype])
    if datatype in INTEGER_TYPES and flat:
        info = np.iinfo(dtype)
        low, high = min(flat), max(flat)
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise BadRequest(
                f"input {name}: {bad} is out of range for {datatype} ({info.min} to {info.max})"
            )
    if datatype in FLOAT_TYPES and flat:
        try:
            wide = np.array(flat, dtype=np.float64)
        except OverflowError:
            wide = np.array([math.inf])
        finfo = np.finfo(dtype)
        if not np.isfinite(wide).all() or np.abs(wide).max() > finfo.max:
            raise BadRequest(
                f"input {name}: values must be finite and within ±{float(finfo.max):.4g} for "
                f"{datatype} (no NaN or Infinity)"
            )
    return np.array(flat, dtype=dtype).reshape(shape)


def tensor_from_binary(raw: bytes, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The tensor in binary data: little-endian row-major values; BYTES elements each
    preceded by a 4-byte little-endian length."""
    size = math.prod(shape)
    if datatype == "BYTES":
        elements: list[bytes] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise BadRequest(f"input {name}: the binary BYTES data ends inside a length prefix")
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise BadRequest(
                    f"input {name}: element {len(elements)} claims {length} bytes but the binary "
                    "data ends first"
                )
            elements.append(raw[offset : offset + length])
            offset += length
        if len(elements) != size:
            raise BadRequest(
                f"input {name}: shape {list(shape)} needs {size} elements, the binary data holds "
                f"{len(elements)}"
            )
        array = np.empty(size, dtype=object)
        array[:] = elements
        return array.reshape(shape)
    dtype = np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<")
    if len(raw) != size * dtype.itemsize:
        raise BadRequest(
            f"input {name}: shape {list(shape)} of {datatype} needs {size * dtype.itemsize} "
            f"bytes of binary data, got {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if datatype in FLOAT_TYPES and not np.isfinite(array).all():
        raise BadRequest(f"input {name}: values must be finite (no NaN or Infinity)")
    return array


def bytes_tensor(values: list[bytes]) -> bytes:
    """BYTES elements in the binary layout (4-byte little-endian length, then the bytes)."""
    return b"".join(struct.pack("<I", len(value)) + value for value in values)


def requested_outputs(
    request: InferenceRequest, names: Sequence[str] = OUTPUT_NAMES
) -> list[tuple[str, bool]]:
    """The outputs an infer request asks for: (name, as binary?) in its order (all of the
    version's output `names`, as JSON unless `binary_data_output`, when it names none)."""
    parameters = request.parameters or {}
    if "sequence_id" in parameters:
        raise BadRequest("sequence batching is not supported; send independent requests")
    binary_default = parameters.get("binary_data_output", False)
    if type(binary_default) is not bool:
        raise BadRequest("parameters.binary_data_output must be true or false")
    requested = request.outputs
    if requested is None:
        requested = [RequestOutput(name=name) for name in names]
    outputs: list[tuple[str, bool]] = []
    for output in requested:
        if output.name not in names:
            raise BadRequest(
                f"unknown output {output.name!r}; the outputs are " + " and ".join(names)
            )
        if any(name == output.name for name, _ in outputs):
            raise BadRequest(f"output {output.name!r} is asked for twice")
        output_parameters = output.parameters or {}
        if any(key.startswith("shared_memory") for key in output_parameters):
            raise BadRequest(
                "shared memory outputs are not supported over HTTP here; omit "
                "shared_memory_region and get the data in the response"
            )
        if "classification" in output_parameters:
            raise BadRequest(
                "the classification extension is not supported; the label output holds the "
                "most probable class and probabilities every class's probability"
            )
        binary = output_parameters.get("binary_data", binary_default)
        if type(binary) is not bool:
            raise BadRequest(f"output {output.name}: parameters.binary_data must be a boolean")
        outputs.append((output.name, binary))
    if not outputs:
        raise BadRequest(
            f"outputs is empty: list the outputs you want ({', '.join(names)}) or omit it"
        )
    return outputs


def check_shape(
    spec: TensorSpec, datatype: str, shape: tuple[int, ...], model: str, max_instances: int
) -> None:
    """The tensor's shape fits the spec: [N, *row_shape] for numbers, [N] (or [N, 1]) for
    BYTES, 1 <= N <= max_instances (413 above)."""
    if datatype == "BYTES":
        # Triton clients often send text as [N, 1].
        fits = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
        wanted = "[N] (or [N, 1])"
    else:
        fits = len(shape) == 1 + len(spec.row_shape) and shape[1:] == spec.row_shape
        wanted = str([-1, *spec.row_shape]).replace("-1", "N")
    if not fits:
        raise BadRequest(
            f"input {spec.name} of model {model} must have shape {wanted} for "
            f"{datatype}, got {list(shape)}"
        )
    if not shape or shape[0] == 0:
        raise BadRequest(f"input {spec.name} is empty (shape {list(shape)}): send at least one")
    if shape[0] > max_instances:
        raise PayloadTooLarge(
            f"too many instances: {shape[0]}, at most {max_instances} per request; split them "
            "over several requests"
        )


def decode_input(
    request: InferenceRequest, binary: bytes, spec: TensorSpec, model: str, max_instances: int
) -> tuple[str, np.ndarray]:
    """(datatype, values) of the request's one input tensor, checked against `spec`: its
    name, datatype and shape, and its data (JSON or binary, exactly one of them)."""
    tensor = request.inputs[0] if request.inputs else None
    datatype, shape = (tensor.datatype, tuple(tensor.shape)) if tensor else ("", ())
    check_input([t.name for t in request.inputs], datatype, shape, spec, model, max_instances)
    assert tensor is not None
    parameters = tensor.parameters or {}
    return datatype, tensor_data(tensor.data, parameters, binary, datatype, shape, spec)


def check_input(
    names: Sequence[str],
    datatype: str,
    shape: tuple[int, ...],
    spec: TensorSpec,
    model: str,
    max_instances: int,
) -> None:
    """The request's inputs (`names`; the first has `datatype` and `shape`) are the one
    input `spec` describes, of a datatype it takes, in a shape it takes (see
    `check_shape`). Shared by every V2 transport (REST, gRPC)."""
    if len(names) != 1 or names[0] != spec.name:
        given = ", ".join(repr(name) for name in names)
        raise BadRequest(
            f"model {model} takes one input, named {spec.name!r} ({spec.help}); got {given}"
        )
    if datatype not in DATATYPES:
        raise BadRequest(
            f"input {spec.name}: unknown datatype {datatype!r}; use one of " + ", ".join(DATATYPES)
        )
    if datatype not in spec.datatypes:
        raise BadRequest(
            f"input {spec.name} of model {model} takes {', '.join(spec.datatypes)}, not "
            f"{datatype}: send {spec.help}"
        )
    check_shape(spec, datatype, shape, model, max_instances)


def tensor_data(
    data: Any,
    parameters: dict[str, Any],
    binary: bytes,
    datatype: str,
    shape: tuple[int, ...],
    spec: TensorSpec,
) -> np.ndarray:
    """A tensor's values from its JSON `data` or from the binary part after the header."""
    if any(key.startswith("shared_memory") for key in parameters):
        raise BadRequest(
            "shared memory inputs are not supported over HTTP here; send the data in the body"
        )
    binary_size = parameters.get("binary_data_size")
    if binary_size is not None:
        if type(binary_size) is not int or binary_size != len(binary):
            raise BadRequest(
                f"input {spec.name}: binary_data_size is {binary_size!r}, but "
                f"{len(binary)} bytes follow the JSON header"
            )
        if data is not None:
            raise BadRequest(
                f"input {spec.name} has both data and binary_data_size; send one of them"
            )
        return tensor_from_binary(binary, datatype, shape, spec.name)
    if binary:
        raise BadRequest(
            f"{len(binary)} bytes follow the JSON header, but no input declares them "
            "with parameters.binary_data_size"
        )
    if data is None:
        raise BadRequest(
            f"input {spec.name} has no data: send it in data, or as binary data "
            "declared by parameters.binary_data_size"
        )
    return tensor_from_json(data, datatype, shape, spec.name)


def encode_response(
    model: str,
    version: int,
    request_id: str | None,
    labels: Sequence[str],
    probabilities: np.ndarray,
    outputs: Sequence[tuple[str, bool]],
    warnings: Sequence[Sequence[Any]] = (),
) -> tuple[bytes, dict[str, str], str]:
    """(body, extra headers, media type) of an infer response: `label` (BYTES [N], the most
    probable class), `probabilities` (FP32 [N, C], C = len(labels)) and `warnings` (BYTES [N],
    each the JSON text of a list of `{"code", "message"}`, from `warnings`: per row, objects
    with `code` and `message`) as asked for, binary ones after the JSON header (with its
    length in `Inference-Header-Content-Length`)."""
    count, classes = probabilities.shape
    encoded: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in outputs:
        if name == "label":
            best = [labels[i] for i in np.argmax(probabilities, axis=1).tolist()]
            tensor: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": [count]}
            if binary:
                blobs.append(bytes_tensor([label.encode() for label in best]))
            else:
                tensor["data"] = best
        elif name == "warnings":
            texts = [
                orjson.dumps(
                    [{"code": w.code, "message": w.message} for w in warnings[i]]
                    if i < len(warnings)
                    else []
                )
                for i in range(count)
            ]
            tensor = {"name": name, "datatype": "BYTES", "shape": [count]}
            if binary:
                blobs.append(bytes_tensor(texts))
            else:
                tensor["data"] = [text.decode() for text in texts]
        else:
            as_fp32 = probabilities.astype(np.float32)
            tensor = {"name": name, "datatype": "FP32", "shape": [count, classes]}
            if binary:
                blobs.append(as_fp32.astype("<f4").tobytes())
            else:
                tensor["data"] = as_fp32.ravel().tolist()
        if binary:
            tensor["parameters"] = {"binary_data_size": len(blobs[-1])}
        encoded.append(tensor)
    response: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = encoded
    header = orjson.dumps(response)
    if not blobs:
        return header, {}, "application/json"
    return header + b"".join(blobs), {HEADER_LENGTH: str(len(header))}, "application/octet-stream"


def encode_tensors(
    model: str,
    version: int,
    request_id: str | None,
    tensors: Sequence[tuple[str, np.ndarray, bool]],
) -> tuple[bytes, dict[str, str], str]:
    """(body, extra headers, media type) of an infer response holding `tensors`: (name,
    values, as binary?) each, values FP32 or strings (BYTES); binary ones after the JSON
    header (its length in `Inference-Header-Content-Length`)."""
    encoded: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, values, binary in tensors:
        is_bytes = values.dtype.kind in "OUS"
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": "BYTES" if is_bytes else "FP32",
            "shape": list(values.shape),
        }
        if binary:
            blobs.append(
                bytes_tensor([str(v).encode() for v in values.ravel().tolist()])
                if is_bytes
                else values.astype("<f4").tobytes()
            )
            tensor["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            tensor["data"] = values.ravel().tolist()
        encoded.append(tensor)
    response: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = encoded
    header = orjson.dumps(response)
    if not blobs:
        return header, {}, "application/json"
    return header + b"".join(blobs), {HEADER_LENGTH: str(len(header))}, "application/octet-stream"
