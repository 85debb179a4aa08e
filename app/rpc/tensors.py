"""The V2 tensor codec for gRPC messages: `ModelInferRequest` in, NumPy out, and back.

Pure functions over the generated messages, no model and no server, like `app.codecs.v2` for
REST, whose checks they share (input name, datatype, shape, instance limit, requested outputs,
binary BYTES layout, finite floats), so a request means the same and is refused with the same
words on both transports.

A tensor's values come either typed, in its `contents` (`fp32_contents`, `int_contents`, ...,
`bytes_contents`), or raw, in the request's `raw_input_contents` (one little-endian,
row-major buffer per input; BYTES elements each preceded by a 4-byte little-endian length, as
in Triton's binary extension). A request uses one of them for all its inputs. The response
answers the same way: `raw_output_contents` when the request was raw (what `tritonclient`
sends and reads), typed contents otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.budget import RequestBudget
from app.codecs.v2 import (
    FLOAT_TYPES,
    NUMPY_TYPES,
    NamedTensors,
    TensorSpec,
    bytes_tensor,
    check_input,
    check_named_inputs,
    finite,
    requested_outputs,
    tensor_from_binary,
    utf8_elements,
)
from app.decoding import LARGE_BODY_BYTES
from app.errors import BadRequest
from app.kinds import InputAdapter
from app.rpc.generated import grpc_service_pb2 as pb
from app.schemas.v2 import InferenceRequest, RequestOutput

# The typed field of `InferTensorContents` that holds each datatype (FP16 has none: raw only).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_ALL_FIELDS = tuple(sorted(set(CONTENTS_FIELDS.values())))


@dataclass(frozen=True, slots=True)
class DecodedTensor:
    """The one input of a gRPC infer request, decoded."""

    datatype: str
    values: np.ndarray  # shape as sent; BYTES: an object array of bytes
    raw: bool  # sent in raw_input_contents (answer in raw_output_contents)
    outputs: list[str]  # output names asked for, in order

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    def rows_off_loop(self, adapter: InputAdapter) -> bool:
        """Whether its rows are made on a decoding thread (`adapter.rows_off_loop`)."""
        return self.nbytes > LARGE_BODY_BYTES or adapter.rows_off_loop(self.datatype, self.nbytes)

    def rows(self, adapter: InputAdapter, budget: RequestBudget | None) -> list[Any]:
        """The version's rows of this input (`adapter.tensor_rows`)."""
        return adapter.tensor_rows(self.datatype, self.values, budget)


@dataclass(frozen=True, slots=True)
class DecodedFeatures:
    """The inputs of a gRPC infer request in the one-tensor-per-feature form, decoded."""

    tensors: NamedTensors  # name -> (datatype, values [N]), in the specs' order
    raw: bool
    outputs: list[str]

    @property
    def nbytes(self) -> int:
        return sum(values.nbytes for _, values in self.tensors.values())

    def rows_off_loop(self, adapter: InputAdapter) -> bool:
        """Whether its rows are made on a decoding thread (large ones only)."""
        return self.nbytes > LARGE_BODY_BYTES

    def rows(self, adapter: InputAdapter, budget: RequestBudget | None) -> list[Any]:
        """The version's rows of these inputs (`adapter.feature_rows`)."""
        return adapter.feature_rows(self.tensors, budget)


def parameter_value(parameter: pb.InferParameter) -> Any:
    """An `InferParameter` as the Python value REST's JSON would carry (None: unset)."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def parameters_dict(parameters: Any) -> dict[str, Any]:
    """A message's `parameters` map as a plain dict of values."""
    return {key: parameter_value(value) for key, value in parameters.items()}


def decode_request(
    request: pb.ModelInferRequest,
    spec: TensorSpec,
    model: str,
    max_instances: int,
    output_names: Sequence[str],
) -> DecodedTensor:
    """The request's one input as NumPy, checked as REST checks it, and the outputs asked
    for. Raises BadRequest (INVALID_ARGUMENT) or PayloadTooLarge (too many instances)."""
    names = [tensor.name for tensor in request.inputs]
    tensor = request.inputs[0] if request.inputs else None
    datatype = tensor.datatype if tensor is not None else ""
    shape = tuple(tensor.shape) if tensor is not None else ()
    if any(dim < 0 or dim > 2**31 - 1 for dim in shape):
        raise BadRequest(f"input {spec.name}: shape {list(shape)} has a negative or huge dimension")
    check_input(names, datatype, shape, spec, model, max_instances)
    assert tensor is not None
    outputs = _requested_outputs(request, output_names)
    values, raw = _values(request, 0, spec)
    return DecodedTensor(datatype, values, raw, outputs)


def decode_named_request(
    request: pb.ModelInferRequest,
    specs: Sequence[TensorSpec],
    model: str,
    max_instances: int,
    output_names: Sequence[str],
    alternative: TensorSpec,
) -> DecodedFeatures:
    """The request's inputs in the one-tensor-per-feature form (`specs`, see
    `app.codecs.v2.named`), each as NumPy [N], checked as REST checks them (NaN in a
    float tensor: a missing value, where its spec allows one), and the outputs asked for."""
    inputs = [(t.name, t.datatype, tuple(t.shape)) for t in request.inputs]
    for name, _, shape in inputs:
        if any(dim < 0 or dim > 2**31 - 1 for dim in shape):
            raise BadRequest(f"input {name}: shape {list(shape)} has a negative or huge dimension")
    check_named_inputs(inputs, specs, model, max_instances, alternative)
    outputs = _requested_outputs(request, output_names)
    by_name = {spec.name: spec for spec in specs}
    decoded: dict[str, tuple[str, np.ndarray]] = {}
    raw = False
    for index, tensor in enumerate(request.inputs):
        values, raw = _values(request, index, by_name[tensor.name])
        decoded[tensor.name] = (tensor.datatype, values.reshape(-1))
    return DecodedFeatures({spec.name: decoded[spec.name] for spec in specs}, raw, outputs)


def _values(request: pb.ModelInferRequest, index: int, spec: TensorSpec) -> tuple[np.ndarray, bool]:
    """(values, raw?) of the request's input `index` (checked against `spec`), from its typed
    contents or its buffer in raw_input_contents."""
    tensor = request.inputs[index]
    datatype, shape = tensor.datatype, tuple(tensor.shape)
    parameters = parameters_dict(tensor.parameters)
    if any(key.startswith("shared_memory") for key in parameters):
        raise BadRequest(
            "shared memory inputs are not supported here; send the data in the request"
        )
    typed = [field for field in _ALL_FIELDS if len(getattr(tensor.contents, field))]
    raw_buffers = request.raw_input_contents
    if raw_buffers:
        if typed:
            raise BadRequest(
                f"input {spec.name} has values in contents.{typed[0]} while the request also "
                "has raw_input_contents; send every input either typed (contents) or raw "
                "(raw_input_contents), not both"
            )
        if len(raw_buffers) != len(request.inputs):
            raise BadRequest(
                f"raw_input_contents holds {len(raw_buffers)} buffers for "
                f"{len(request.inputs)} input(s); send one buffer per input"
            )
        return tensor_from_binary(
            raw_buffers[index], datatype, shape, spec.name, spec.nullable
        ), True
    return _typed_values(tensor, typed, shape, spec), False


def _typed_values(
    tensor: pb.ModelInferRequest.InferInputTensor,
    typed: list[str],
    shape: tuple[int, ...],
    spec: TensorSpec,
) -> np.ndarray:
    datatype = tensor.datatype
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:
        raise BadRequest(
            f"input {spec.name} is {datatype}, which has no typed contents field; send it in "
            "raw_input_contents (little-endian)"
        )
    if not typed:
        raise BadRequest(
            f"input {spec.name} has no data: send it in contents.{field}, or in raw_input_contents"
        )
    if typed != [field]:
        other = next(f for f in typed if f != field)
        raise BadRequest(
            f"input {spec.name} is {datatype}, so its values go in contents.{field}; found "
            f"contents.{other}"
        )
    data = getattr(tensor.contents, field)
    size = math.prod(shape)
    if len(data) != size:
        raise BadRequest(
            f"input {spec.name}: shape {list(shape)} needs {size} values, "
            f"contents.{field} has {len(data)}"
        )
    if datatype == "BYTES":
        array = np.empty(size, dtype=object)
        array[:] = list(data)
        return array.reshape(shape)
    dtype = np.dtype(NUMPY_TYPES[datatype])
    if datatype in ("INT8", "INT16", "UINT8", "UINT16") and size:
        # Carried in 32-bit fields: the values must fit the narrower type.
        wide = np.asarray(data, dtype=np.int64)
        info = np.iinfo(dtype)
        low, high = int(wide.min()), int(wide.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise BadRequest(
                f"input {spec.name}: {bad} is out of range for {datatype} "
                f"({info.min} to {info.max})"
            )
        return wide.astype(dtype).reshape(shape)
    array = np.asarray(data, dtype=dtype).reshape(shape)
    if datatype in FLOAT_TYPES and not finite(array, spec.nullable):
        refused = "Infinity" if spec.nullable else "NaN or Infinity"
        raise BadRequest(f"input {spec.name}: values must be finite (no {refused})")
    return array


def _requested_outputs(request: pb.ModelInferRequest, names: Sequence[str]) -> list[str]:
    """The output names asked for, checked by the REST codec's rules (unknown, twice,
    shared memory, classification)."""
    as_rest = InferenceRequest.model_construct(
        id=request.id or None,
        parameters=parameters_dict(request.parameters),
        inputs=[],
        outputs=[
            RequestOutput.model_construct(
                name=output.name, parameters=parameters_dict(output.parameters)
            )
            for output in request.outputs
        ]
        or None,
    )
    return [name for name, _ in requested_outputs(as_rest, names)]


def encode_response(
    model: str,
    version: int,
    request_id: str,
    tensors: Sequence[tuple[str, np.ndarray]],
    raw: bool,
) -> pb.ModelInferResponse:
    """The `ModelInferResponse` holding `tensors` ((name, values): strings as BYTES, numbers
    as FP32, shapes as the values'), raw or typed (from `app.protocols.tensors.output_tensors`)."""
    response = pb.ModelInferResponse(model_name=model, model_version=str(version), id=request_id)
    for name, values in tensors:
        tensor = response.outputs.add(name=name)
        tensor.shape.extend(values.shape)
        if values.dtype.kind in "OUS":
            tensor.datatype = "BYTES"
            items = utf8_elements(values)
            if raw:
                response.raw_output_contents.append(bytes_tensor(items))
            else:
                tensor.contents.bytes_contents.extend(items)
        else:
            tensor.datatype = "FP32"
            as_fp32 = values.astype("<f4")
            if raw:
                response.raw_output_contents.append(as_fp32.tobytes())
            else:
                tensor.contents.fp32_contents.extend(as_fp32.ravel().tolist())
    return response
