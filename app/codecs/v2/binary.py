"""Triton's binary tensor extension: a JSON header of `Inference-Header-Content-Length` bytes,
then the raw little-endian tensors; BYTES elements each preceded by a 4-byte little-endian
length."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from app.codecs.v2.datatypes import FLOAT_TYPES, NUMPY_TYPES
from app.errors import BadRequest

HEADER_LENGTH = "Inference-Header-Content-Length"


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


def tensor_from_binary(
    raw: bytes, datatype: str, shape: tuple[int, ...], name: str, allow_nan: bool = False
) -> np.ndarray:
    """The tensor in binary data: little-endian row-major values; BYTES elements each
    preceded by a 4-byte little-endian length. Floats must be finite (`allow_nan`: or NaN,
    a missing value)."""
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
    if datatype in FLOAT_TYPES and not finite(array, allow_nan):
        refused = "Infinity" if allow_nan else "NaN or Infinity"
        raise BadRequest(f"input {name}: values must be finite (no {refused})")
    return array


def finite(array: np.ndarray, allow_nan: bool = False) -> bool:
    """Every value of a float array is finite (`allow_nan`: or NaN); never Infinity."""
    if allow_nan:
        return not np.isinf(array).any()
    return bool(np.isfinite(array).all())


def bytes_tensor(values: list[bytes]) -> bytes:
    """BYTES elements in the binary layout (4-byte little-endian length, then the bytes)."""
    # Outputs repeat a few values (labels, "[]" warnings): each distinct one framed once.
    framed: dict[bytes, bytes] = {}
    pieces = []
    for value in values:
        piece = framed.get(value)
        if piece is None:
            piece = framed[value] = struct.pack("<I", len(value)) + value
        pieces.append(piece)
    return b"".join(pieces)


def utf8_elements(values: np.ndarray) -> list[bytes]:
    """A BYTES tensor's elements, row-major: each value as UTF-8 text (`str(value)`)."""
    # Outputs repeat a few values (labels, "[]" warnings): each distinct one encoded once.
    encoded: dict[Any, bytes] = {}
    elements = []
    for value in values.ravel().tolist():
        element = encoded.get(value)
        if element is None:
            element = encoded[value] = str(value).encode()
        elements.append(element)
    return elements
