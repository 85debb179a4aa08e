"""A table's features as V2 input tensors, one per feature (a column): what each takes, and
its values made into the same Python values the JSON-object form gives (so a row is the
same row, and the answer the same, whichever form the client sent).

- a number: any numeric datatype (FP32 in the metadata); NaN or null is a missing value;
- a string (a category): BYTES, UTF-8; null is a missing value;
- a boolean: BOOL; null is a missing value.

A missing value where the card says the feature takes none, a value beyond float32's range,
an element that is not UTF-8 or a string over the friendly API's length limit: InvalidInput
naming the input and the element, as `input city[2]: ...`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.codecs.v2 import NUMERIC_TYPES, TensorSpec
from app.errors import InvalidInput
from app.schemas.card import Feature
from app.schemas.predict import FLOAT32_MAX

# The friendly API's limit on one string feature (`table._FEATURE_TYPES`), on every route.
MAX_STRING_CHARS = 10_000

_TAKES: dict[str, tuple[tuple[str, ...], str]] = {
    # FP32 first: the datatype the metadata names (`TensorSpec.metadata_datatype`).
    "number": (("FP32", *(t for t in NUMERIC_TYPES if t != "FP32")), "numbers"),
    "string": (("BYTES",), "strings (UTF-8)"),
    "boolean": (("BOOL",), "true/false"),
}


def feature_spec(feature: Feature) -> TensorSpec:
    """The V2 input tensor of one feature: named as the feature, shape [N]."""
    datatypes, values = _TAKES[feature.dtype]
    what = f"{', '.join(datatypes)} [N] of {values}"
    if feature.missing:
        what += ", null (or NaN) where the value is missing"
    if feature.categories:
        what += "; seen: " + ", ".join(feature.categories[:20])
    return TensorSpec(feature.name, datatypes, (), what, nullable=feature.missing)


def column_values(feature: Feature, values: np.ndarray) -> list[Any]:
    """One feature's decoded tensor values [N] (numbers, bytes or str, bools; None where
    null) -> its N values as a row holds them (None where missing)."""
    name = feature.name
    out: list[Any] = values.tolist()
    for index, value in enumerate(out):
        if value is None or (type(value) is float and math.isnan(value)):
            if not feature.missing:
                raise InvalidInput(
                    f"input {name}[{index}] is missing ({'null' if value is None else 'NaN'}), "
                    f"and the model needs a value for {name}"
                )
            out[index] = None
        elif feature.dtype == "number":
            value = float(value)
            if not abs(value) <= FLOAT32_MAX:
                raise InvalidInput(
                    f"input {name}[{index}] is out of range: numbers must be within "
                    f"±{FLOAT32_MAX:.3g} (float32)"
                )
            out[index] = value
        elif feature.dtype == "string":
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidInput(
                        f"input {name}[{index}] is not UTF-8 text; send the category as a "
                        "UTF-8 string"
                    ) from None
            if len(value) > MAX_STRING_CHARS:
                raise InvalidInput(
                    f"input {name}[{index}] has {len(value)} characters, more than "
                    f"{MAX_STRING_CHARS}"
                )
            out[index] = value
        else:
            out[index] = bool(value)
    return out
