"""Moved to `app.adapters` (one module per input kind); kept so older imports still work."""

from app.adapters import (
    EncodedText,
    ImageAdapter,
    InputAdapter,
    InputLimits,
    TabularAdapter,
    TextAdapter,
    decode_b64,
    make_adapter,
    plain_numeric_rows,
)

__all__ = [
    "EncodedText",
    "ImageAdapter",
    "InputAdapter",
    "InputLimits",
    "TabularAdapter",
    "TextAdapter",
    "decode_b64",
    "make_adapter",
    "plain_numeric_rows",
]
