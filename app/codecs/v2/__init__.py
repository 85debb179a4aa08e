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

The parts: datatypes.py (datatypes, shapes, JSON data), binary.py (the binary extension,
BYTES), body.py (Content-Encoding), documents.py (the request and response documents), named.py
(one input tensor per feature); every name is imported from here.
"""

from app.codecs.v2.binary import (
    HEADER_LENGTH,
    bytes_tensor,
    finite,
    split_body,
    tensor_from_binary,
    utf8_elements,
)
from app.codecs.v2.body import INFLATE_CHUNK_BYTES, decompress_body
from app.codecs.v2.datatypes import (
    DATATYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    NUMERIC_TYPES,
    NUMPY_TYPES,
    TensorSpec,
    check_input,
    check_shape,
    tensor_from_json,
)
from app.codecs.v2.documents import (
    EXTENSIONS,
    OUTPUT_NAMES,
    SERVER_NAME,
    decode_input,
    encode_response,
    encode_tensors,
    parse_request,
    requested_outputs,
    tensor_data,
    warnings_json,
)
from app.codecs.v2.named import (
    NamedTensors,
    check_named_inputs,
    decode_named_inputs,
    takes_named_inputs,
)

__all__ = [
    "DATATYPES",
    "EXTENSIONS",
    "FLOAT_TYPES",
    "HEADER_LENGTH",
    "INFLATE_CHUNK_BYTES",
    "INTEGER_TYPES",
    "NUMERIC_TYPES",
    "NUMPY_TYPES",
    "OUTPUT_NAMES",
    "SERVER_NAME",
    "NamedTensors",
    "TensorSpec",
    "bytes_tensor",
    "check_input",
    "check_named_inputs",
    "check_shape",
    "decode_input",
    "decode_named_inputs",
    "decompress_body",
    "encode_response",
    "encode_tensors",
    "finite",
    "parse_request",
    "requested_outputs",
    "split_body",
    "takes_named_inputs",
    "tensor_data",
    "tensor_from_binary",
    "tensor_from_json",
    "utf8_elements",
    "warnings_json",
]
