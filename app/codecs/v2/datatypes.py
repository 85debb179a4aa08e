"""The V2 datatypes and shapes: the NumPy type of each datatype, the input tensor a version
takes (`TensorSpec`), the checks of a request's input against it, and JSON `data` (flat or
nested) read into an array of its datatype and shape."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import BadRequest, PayloadTooLarge

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
    # The named features one instance holds, each with the V2 datatype of its values (a
    # tabular or table model's columns; empty for images and texts), for the metadata.
    features: tuple[tuple[str, str], ...] = ()
    # Whether a value may be missing: a JSON null, or NaN in FP16/FP32/FP64 (binary, gRPC).
    nullable: bool = False

    @property
    def metadata_datatype(self) -> str:
        return "FP32" if "FP32" in self.datatypes else self.datatypes[0]


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


def tensor_from_json(
    data: Any, datatype: str, shape: tuple[int, ...], name: str, nullable: bool = False
) -> np.ndarray:
    """The tensor a JSON `data` field holds, checked against datatype and shape. With
    `nullable`, an element may be null: the tensor is then an object array of Python values,
    None where null."""
    flat, nested = _flatten(data, name)
    size = math.prod(shape)
    if len(flat) != size:
        raise BadRequest(
            f"input {name}: shape {list(shape)} needs {size} values, data has {len(flat)}"
        )
    kind, is_kind = _JSON_KINDS[datatype]
    if nullable and None in flat:
        present = [value for value in flat if value is not None]
        # The present values pass the checks below (types, range), as a tensor of their own.
        tensor_from_json(present, datatype, (len(present),), name)
        array = np.empty(size, dtype=object)
        array[:] = flat
        return array.reshape(shape)
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
