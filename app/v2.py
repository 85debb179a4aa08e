"""Open Inference Protocol (V2): typed tensors in, the same batchers and models, tensors out.

Requests decode into the same rows the friendly API makes (through the same adapters, so the
same checks apply) and go through the same batcher; predictions come back as two output
tensors, `label` (BYTES [N]) and `probabilities` (FP32 [N, C]).

Triton's binary tensor extension is supported both ways, because `tritonclient` uses it by
default: a body may be a JSON header of `Inference-Header-Content-Length` bytes followed by the
raw tensors (`parameters.binary_data_size`), and outputs asked for with `binary_data` come back
the same way.

Every error the client can fix is a 400 here (the protocol's convention), not the friendly
API's 422.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError
from starlette.types import Receive

from app import __version__
from app.budget import RequestBudget
from app.errors import (
    BadRequest,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServingError,
    UnsupportedMediaType,
)
from app.preprocessing.adapters import InputAdapter, decode_b64
from app.registry import ModelEntry, ModelState
from app.schemas.card import ImageInput, ModelCard, TabularInput
from app.schemas.v2 import InferenceRequest, RequestOutput
from app.service import LARGE_BODY_BYTES, PredictionService, label_request

SERVER_NAME = "synergy-serve"
EXTENSIONS = ["binary_tensor_data"]
OUTPUT_NAMES = ("label", "probabilities")
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
class InputSpec:
    """The one input tensor a model takes."""

    name: str
    datatypes: tuple[str, ...]
    # Shape of one instance for numeric datatypes; BYTES tensors hold one element per instance.
    row_shape: tuple[int, ...]
    help: str

    @property
    def metadata_datatype(self) -> str:
        return "FP32" if "FP32" in self.datatypes else self.datatypes[0]


def input_spec(card: ModelCard) -> InputSpec:
    """The V2 input of a model, from its card."""
    spec = card.input
    if isinstance(spec, TabularInput):
        return InputSpec(
            "features",
            NUMERIC_TYPES,
            (spec.n_features,),
            f"FP32 [N, {spec.n_features}], features in the order "
            + ", ".join(f.name for f in spec.features),
        )
    if isinstance(spec, ImageInput):
        return InputSpec(
            "image",
            (*NUMERIC_TYPES, "BYTES"),
            (spec.height, spec.width),
            f"UINT8 or FP32 [N, {spec.height}, {spec.width}] of grey levels "
            f"0-{spec.max_value:g} (white digit on black), or BYTES [N] of PNG/JPEG files "
            "(base64 strings in JSON, raw bytes as binary data)",
        )
    return InputSpec("text", ("BYTES",), (), "BYTES [N] of UTF-8 review text")


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
        problems = [
            f"{_location(e['loc'])}: {e['msg']}"
            + (f" (got {_short(e['input'])})" if e["type"] != "missing" else "")
            for e in errors[:3]
        ]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise BadRequest("; ".join(problems) + more) from None


def _location(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


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


@dataclass
class DecodedRequest:
    """What an infer request asks for, ready for the batcher."""

    request: InferenceRequest
    rows: list[Any]
    # (output name, as binary?) in the order asked for.
    outputs: list[tuple[str, bool]]


class V2Protocol:
    """The V2 endpoints' logic, on top of the PredictionService (its registry and batchers)."""

    def __init__(self, service: PredictionService) -> None:
        self.service = service
        self.registry = service.registry

    # ------------------------------------------------------------------ metadata and health
    def server_metadata(self) -> dict[str, Any]:
        """`GET /v2`."""
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    def server_ready(self) -> bool:
        """Every model loaded and warm, and not shutting down."""
        return self.service.readiness()[0]

    def _version(self, name: str, version: str | None) -> int | None:
        if version is None:
            return None
        if not (version.isascii() and version.isdigit()):
            versions = ", ".join(str(v) for v in sorted(self.registry.versions(name)))
            raise NotFound(
                f"model {name!r} has no version {version!r}; versions are integers, available: "
                f"{versions}"
            )
        return int(version)

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """`GET /v2/models/{name}[/versions/{version}]`."""
        entry = self.service.carded_entry(name, self._version(name, version))
        card = entry.card
        assert card is not None
        spec = input_spec(card)
        accepted = ", ".join(spec.datatypes)
        return {
            "name": card.name,
            "versions": [str(v) for v in sorted(self.registry.versions(name))],
            "platform": card.framework,
            "inputs": [
                {
                    "name": spec.name,
                    "datatype": spec.metadata_datatype,
                    "shape": [-1, *spec.row_shape],
                    "parameters": {"accepted_datatypes": accepted, "description": spec.help},
                }
            ],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(card.labels)]},
            ],
            "labels": card.labels,
        }

    def model_ready(self, name: str, version: str | None) -> tuple[bool, dict[str, Any]]:
        """(ready?, body) for `GET /v2/models/{name}[/versions/{version}]/ready`."""
        entry = self.registry.find(name, self._version(name, version))
        ready = entry.state is ModelState.READY and not self.service.draining
        return ready, {"name": name, "version": str(entry.version), "ready": ready}

    # ------------------------------------------------------------------ inference
    async def infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        headers: dict[str, str | None],
        scope_state: dict[str, Any],
        receive: Receive | None = None,
    ) -> tuple[bytes, dict[str, str], str]:
        """One infer request -> (response body, extra headers, media type)."""
        entry = self.service.ready_entry(name, self._version(name, version), scope_state)
        label_request(scope_state, entry)
        adapter = entry.adapter
        assert adapter is not None
        compressed = (headers.get("content-encoding") or "identity").strip().lower() != "identity"
        try:
            if adapter.slow_rows or compressed or len(body) > LARGE_BODY_BYTES:
                decoded = await self.service.off_loop(
                    lambda budget: self._decode(entry, body, headers, budget), scope_state, receive
                )
            else:
                decoded = self._decode(entry, body, headers, None)
        except InvalidInput as exc:
            raise BadRequest(exc.message) from None
        scope_state["rows"] = len(decoded.rows)
        scope_state["protocol"] = "v2"  # the monitoring store's route column
        assert entry.card is not None
        try:
            predictions = await self.service.run(
                entry, decoded.rows, scope_state, f"input {input_spec(entry.card).name}[{{}}]"
            )
        except InvalidInput as exc:
            raise BadRequest(exc.message) from None
        return self._encode(entry, decoded, predictions)

    def _decode(
        self,
        entry: ModelEntry,
        body: bytes,
        headers: dict[str, str | None],
        budget: RequestBudget | None,
    ) -> DecodedRequest:
        assert entry.card is not None and entry.adapter is not None
        header_length = headers.get(HEADER_LENGTH.lower())
        limit = entry.adapter.max_values(self.service.settings.max_instances)
        body = decompress_body(
            body,
            headers.get("content-encoding"),
            self.service.settings.max_body_bytes,
            # Only an all-JSON body's commas are values; binary tensor data has any bytes.
            None
            if header_length is not None or limit is None
            else lambda values: self.service.check_value_count(entry, values),
        )
        header, binary = split_body(body, header_length)
        if len(header) > LARGE_BODY_BYTES:
            self.service.check_value_count(entry, header.count(b",") + 1)
        request = parse_request(header)
        outputs = self._outputs(request)
        spec = input_spec(entry.card)
        if len(request.inputs) != 1 or request.inputs[0].name != spec.name:
            given = ", ".join(repr(tensor.name) for tensor in request.inputs)
            raise BadRequest(
                f"model {entry.name} takes one input, named {spec.name!r} ({spec.help}); got "
                f"{given}"
            )
        tensor = request.inputs[0]
        datatype, shape = tensor.datatype, tuple(tensor.shape)
        if datatype not in DATATYPES:
            raise BadRequest(
                f"input {spec.name}: unknown datatype {datatype!r}; use one of "
                + ", ".join(DATATYPES)
            )
        if datatype not in spec.datatypes:
            raise BadRequest(
                f"input {spec.name} of model {entry.name} takes {', '.join(spec.datatypes)}, not "
                f"{datatype}: send {spec.help}"
            )
        self._check_shape(entry, spec, datatype, shape)
        parameters = tensor.parameters or {}
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
            if tensor.data is not None:
                raise BadRequest(
                    f"input {spec.name} has both data and binary_data_size; send one of them"
                )
            values = tensor_from_binary(binary, datatype, shape, spec.name)
        else:
            if binary:
                raise BadRequest(
                    f"{len(binary)} bytes follow the JSON header, but no input declares them "
                    "with parameters.binary_data_size"
                )
            if tensor.data is None:
                raise BadRequest(
                    f"input {spec.name} has no data: send it in data, or as binary data "
                    "declared by parameters.binary_data_size"
                )
            values = tensor_from_json(tensor.data, datatype, shape, spec.name)
        rows = self._rows(entry.adapter, spec, datatype, values, budget)
        return DecodedRequest(request, rows, outputs)

    def _outputs(self, request: InferenceRequest) -> list[tuple[str, bool]]:
        parameters = request.parameters or {}
        if "sequence_id" in parameters:
            raise BadRequest("sequence batching is not supported; send independent requests")
        binary_default = parameters.get("binary_data_output", False)
        if type(binary_default) is not bool:
            raise BadRequest("parameters.binary_data_output must be true or false")
        requested = request.outputs
        if requested is None:
            requested = [RequestOutput(name=name) for name in OUTPUT_NAMES]
        outputs: list[tuple[str, bool]] = []
        for output in requested:
            if output.name not in OUTPUT_NAMES:
                raise BadRequest(
                    f"unknown output {output.name!r}; the outputs are label and probabilities"
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
                "outputs is empty: list the outputs you want (label, probabilities) or omit it"
            )
        return outputs

    def _check_shape(
        self, entry: ModelEntry, spec: InputSpec, datatype: str, shape: tuple[int, ...]
    ) -> None:
        if datatype == "BYTES":
            # Triton clients often send text as [N, 1].
            fits = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
            wanted = "[N] (or [N, 1])"
        else:
            fits = len(shape) == 1 + len(spec.row_shape) and shape[1:] == spec.row_shape
            wanted = str([-1, *spec.row_shape]).replace("-1", "N")
        if not fits:
            raise BadRequest(
                f"input {spec.name} of model {entry.name} must have shape {wanted} for "
                f"{datatype}, got {list(shape)}"
            )
        count = shape[0] if shape else 0
        if count == 0:
            raise BadRequest(f"input {spec.name} is empty (shape {list(shape)}): send at least one")
        limit = self.service.settings.max_instances
        if count > limit:
            raise PayloadTooLarge(
                f"too many instances: {count}, at most {limit} per request; split them over "
                "several requests"
            )

    def _rows(
        self,
        adapter: InputAdapter,
        spec: InputSpec,
        datatype: str,
        values: np.ndarray,
        budget: RequestBudget | None,
    ) -> list[Any]:
        if datatype != "BYTES":
            as_rows = values.astype(np.float32, copy=False) if datatype != "FP64" else values
            return [
                self._row(adapter.to_row, spec, index, row) for index, row in enumerate(as_rows)
            ]
        elements = values.reshape(-1)
        if isinstance(adapter.card.input, ImageInput):
            image_to_row = adapter.image_to_row  # type: ignore[attr-defined]
            return [
                self._row(lambda e: image_to_row(_image_bytes(e), budget), spec, index, element)
                for index, element in enumerate(elements)
            ]
        return [
            self._row(adapter.to_row, spec, index, self._text(element, spec.name, index))
            for index, element in enumerate(elements)
        ]

    @staticmethod
    def _row(convert: Callable[[Any], Any], spec: InputSpec, index: int, value: Any) -> Any:
        try:
            return convert(value)
        except ServingError as exc:
            exc.message = f"input {spec.name}[{index}]: {exc.message}"
            raise

    def _text(self, element: Any, name: str, index: int) -> str:
        if isinstance(element, bytes):
            try:
                element = element.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(
                    f"input {name}[{index}] is not valid UTF-8 ({exc.reason} at byte "
                    f"{exc.start}); send the text encoded as UTF-8"
                ) from None
        limit = self.service.settings.max_text_chars
        if not element:
            raise BadRequest(f"input {name}[{index}] is empty; send at least 1 character")
        if len(element) > limit:
            raise BadRequest(
                f"input {name}[{index}] has {len(element)} characters, over the limit of {limit}; "
                "shorten the text"
            )
        return str(element)

    def _encode(
        self, entry: ModelEntry, decoded: DecodedRequest, predictions: list[dict[str, Any]]
    ) -> tuple[bytes, dict[str, str], str]:
        assert entry.card is not None
        count, classes = len(predictions), len(entry.card.labels)
        outputs: list[dict[str, Any]] = []
        blobs: list[bytes] = []
        for name, binary in decoded.outputs:
            if name == "label":
                labels = [p["label"] for p in predictions]
                tensor: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": [count]}
                if binary:
                    blobs.append(bytes_tensor([label.encode() for label in labels]))
                else:
                    tensor["data"] = labels
            else:
                probabilities = np.array(
                    [list(p["probabilities"].values()) for p in predictions], dtype=np.float32
                )
                tensor = {"name": name, "datatype": "FP32", "shape": [count, classes]}
                if binary:
                    blobs.append(probabilities.astype("<f4").tobytes())
                else:
                    tensor["data"] = probabilities.ravel().tolist()
            if binary:
                tensor["parameters"] = {"binary_data_size": len(blobs[-1])}
            outputs.append(tensor)
        response: dict[str, Any] = {
            "model_name": entry.name,
            "model_version": str(entry.version),
        }
        if decoded.request.id is not None:
            response["id"] = decoded.request.id
        response["outputs"] = outputs
        header = orjson.dumps(response)
        if not blobs:
            return header, {}, "application/json"
        return (
            header + b"".join(blobs),
            {HEADER_LENGTH: str(len(header))},
            "application/octet-stream",
        )


def _image_bytes(element: Any) -> bytes:
    # Raw bytes from binary data; in JSON a string, which holds the file as base64.
    if isinstance(element, bytes):
        return element
    return decode_b64(
        element, "the string (in JSON an image file is base64; raw bytes go as binary data)"
    )
