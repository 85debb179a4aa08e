"""Several named input tensors, one per feature (a column of a table): what V2 clients such
as tritonclient, KServe or MLServer's pandas codec send for a model with named columns, each
`{"name": <feature>, "datatype": ..., "shape": [N] or [N, 1], "data": [...]}`.

The kind declares the tensors it takes this way (`InputAdapter.feature_specs`, each a
`TensorSpec` with its datatypes and whether a value may be missing); these functions check a
request's inputs against them, on every transport (REST JSON, REST binary, gRPC), and return
each one's values, for the kind to make rows of.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.codecs.v2.datatypes import DATATYPES, TensorSpec
from app.codecs.v2.documents import tensor_data
from app.errors import BadRequest, PayloadTooLarge
from app.schemas.v2 import InferenceRequest

# name -> (datatype, values of shape [N]); in the order of the specs.
NamedTensors = dict[str, tuple[str, np.ndarray]]


def takes_named_inputs(
    names: Sequence[str], spec: TensorSpec, features: Sequence[TensorSpec]
) -> bool:
    """Whether a request with inputs `names` uses the one-tensor-per-feature form: the
    version has such a form (`features`) and the request is not the one input `spec`."""
    return bool(features) and list(names) != [spec.name]


def _listing(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(spec.name for spec in specs)


def check_named_inputs(
    inputs: Sequence[tuple[str, str, tuple[int, ...]]],
    specs: Sequence[TensorSpec],
    model: str,
    max_instances: int,
    alternative: TensorSpec,
) -> int:
    """The request's inputs ((name, datatype, shape) each) are exactly one per spec, each of
    a datatype its spec takes, of shape [N] or [N, 1], all of one N in 1..max_instances;
    returns N. `alternative`: the version's one-input form, named in the errors."""
    by_name = {spec.name: spec for spec in specs}
    seen: set[str] = set()
    lengths: list[tuple[str, int]] = []
    for name, datatype, shape in inputs:
        spec = by_name.get(name)
        if spec is None:
            raise BadRequest(
                f"unknown input {name!r}: model {model} takes one input per feature, named "
                f"{_listing(specs)} (or the one input {alternative.name!r}: {alternative.help})"
            )
        if name in seen:
            raise BadRequest(f"input {name} is given twice; send each feature once")
        seen.add(name)
        if datatype not in DATATYPES:
            raise BadRequest(
                f"input {name}: unknown datatype {datatype!r}; use one of " + ", ".join(DATATYPES)
            )
        if datatype not in spec.datatypes:
            raise BadRequest(
                f"input {name} of model {model} takes {', '.join(spec.datatypes)}, not "
                f"{datatype}: send {spec.help}"
            )
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise BadRequest(
                f"input {name} of model {model} must have shape [N] (or [N, 1]), one value per "
                f"instance, got {list(shape)}"
            )
        lengths.append((name, shape[0]))
    missing = [spec.name for spec in specs if spec.name not in seen]
    if missing:
        raise BadRequest(
            f"missing input{'s' if len(missing) > 1 else ''} {', '.join(missing)}: model "
            f"{model} takes one input per feature ({_listing(specs)}); send every feature, a "
            "missing value as null where the feature allows it"
        )
    count = lengths[0][1]
    other = next(((name, n) for name, n in lengths if n != count), None)
    if other is not None:
        raise BadRequest(
            f"the inputs have different lengths: {lengths[0][0]} has {count} values, "
            f"{other[0]} has {other[1]}; send one value per instance in each"
        )
    if count == 0:
        raise BadRequest(f"input {lengths[0][0]} is empty (shape [0]): send at least one instance")
    if count > max_instances:
        raise PayloadTooLarge(
            f"too many instances: {count}, at most {max_instances} per request; split them "
            "over several requests"
        )
    return count


def decode_named_inputs(
    request: InferenceRequest,
    binary: bytes,
    specs: Sequence[TensorSpec],
    model: str,
    max_instances: int,
    alternative: TensorSpec,
) -> NamedTensors:
    """Each feature's (datatype, values [N]) from a REST request: JSON `data` (null where a
    value may be missing) or binary data after the header, each binary input taking its
    `binary_data_size` bytes in the order of the inputs (Triton's binary extension)."""
    check_named_inputs(
        [(t.name, t.datatype, tuple(t.shape)) for t in request.inputs],
        specs,
        model,
        max_instances,
        alternative,
    )
    by_name = {spec.name: spec for spec in specs}
    decoded: dict[str, tuple[str, np.ndarray]] = {}
    offset = 0
    for tensor in request.inputs:
        spec = by_name[tensor.name]
        parameters = tensor.parameters or {}
        size = parameters.get("binary_data_size")
        part = b""
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise BadRequest(
                    f"input {spec.name}: binary_data_size is {size!r}, but only "
                    f"{len(binary) - offset} bytes of binary data are left for it"
                )
            part, offset = binary[offset : offset + size], offset + size
        shape = tuple(tensor.shape)
        values = tensor_data(tensor.data, parameters, part, tensor.datatype, shape, spec)
        decoded[spec.name] = (tensor.datatype, values.reshape(-1))
    if offset != len(binary):
        raise BadRequest(
            f"{len(binary) - offset} bytes follow the JSON header beyond what the inputs "
            "declare with parameters.binary_data_size"
        )
    return {spec.name: decoded[spec.name] for spec in specs}
