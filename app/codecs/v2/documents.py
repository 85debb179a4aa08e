"""The V2 request and response documents: the infer request parsed and validated, the
`outputs` it asks for, its one input tensor's data (JSON or binary), and the response with
each output as JSON or binary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from app.codecs.v2.binary import HEADER_LENGTH, bytes_tensor, tensor_from_binary, utf8_elements
from app.codecs.v2.datatypes import TensorSpec, _short, check_input, tensor_from_json
from app.errors import BadRequest
from app.schemas import problems
from app.schemas.v2 import InferenceRequest, RequestOutput

SERVER_NAME = "synergy-serve"
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]
OUTPUT_NAMES = ("label", "probabilities", "warnings")


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
        return tensor_from_binary(binary, datatype, shape, spec.name, spec.nullable)
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
    return tensor_from_json(data, datatype, shape, spec.name, spec.nullable)


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
            best = [labels[i] for i in probabilities.argmax(axis=1).tolist()]
            tensor: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": [count]}
            if binary:
                blobs.append(bytes_tensor([label.encode() for label in best]))
            else:
                tensor["data"] = best
        elif name == "warnings":
            texts = warnings_json(warnings, count)
            tensor = {"name": name, "datatype": "BYTES", "shape": [count]}
            if binary:
                blobs.append(bytes_tensor([text.encode() for text in texts]))
            else:
                tensor["data"] = texts
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


def warnings_json(warnings: Sequence[Sequence[Any]], count: int) -> list[str]:
    """The `warnings` output's elements: per row (of `count`), the JSON text of its list of
    `{"code", "message"}` (`warnings`: per row, objects with `code` and `message`; a row past
    its end has none)."""
    texts = ["[]"] * count
    # Most rows have nothing to say, and warned rows mostly say the same: each distinct list
    # is written once (a 256-row request: one pass over the rows, not 256 dumps).
    written: dict[tuple[tuple[str, str], ...], str] = {}
    for index, found in enumerate(warnings[:count]):
        if found:
            key = tuple((w.code, w.message) for w in found)
            text = written.get(key)
            if text is None:
                listed = [{"code": code, "message": message} for code, message in key]
                text = written[key] = orjson.dumps(listed).decode()
            texts[index] = text
    return texts


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
                bytes_tensor(utf8_elements(values)) if is_bytes else values.astype("<f4").tobytes()
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
