"""Moved to `app.adapters` (one module per input kind); kept so older imports still work."""

from app.adapters import (
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
    "ImageAdapter",
    "InputAdapter",
    "InputLimits",
    "TabularAdapter",
    "TextAdapter",
    "decode_b64",
    "make_adapter",
    "plain_numeric_rows",
]
