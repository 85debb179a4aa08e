"""Moved: the tensor codec to `app.codecs.v2`, the protocol to `app.protocols.v2`; kept so
older imports still work."""

from app.codecs.v2 import (
    DATATYPES,
    HEADER_LENGTH,
    NUMPY_TYPES,
    TensorSpec,
    bytes_tensor,
    decompress_body,
    parse_request,
    split_body,
    tensor_from_binary,
    tensor_from_json,
)
from app.protocols.v2 import DecodedRequest, V2Protocol

InputSpec = TensorSpec

__all__ = [
    "DATATYPES",
    "HEADER_LENGTH",
    "NUMPY_TYPES",
    "DecodedRequest",
    "InputSpec",
    "TensorSpec",
    "V2Protocol",
    "bytes_tensor",
    "decompress_body",
    "parse_request",
    "split_body",
    "tensor_from_binary",
    "tensor_from_json",
]
