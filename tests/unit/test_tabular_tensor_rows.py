"""A tabular kind's V2 tensor rows, checked in one vectorised pass, equal checking each row
with `to_row`: the same rows, and the same refusal naming the same row and feature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.errors import InvalidInput
from app.kinds import InputLimits, make_adapter
from app.kinds.base import named_rows
from app.schemas.card import ModelCard
from tests.unit.test_card import VALID

FEATURES = 3
CARD = ModelCard.model_validate(
    {
        **VALID,
        "input": {"kind": "tabular", "features": [{"name": f"x{i}"} for i in range(FEATURES)]},
    }
)
ADAPTER = make_adapter(CARD, Path("."), InputLimits())
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([3.5e38, -3.5e38, 1e300, 0.0, -1.5]),
)


def _row_by_row(datatype: str, array: np.ndarray) -> list[np.ndarray] | str:
    as_rows = array.astype(np.float32) if datatype != "FP64" else array
    try:
        return named_rows(ADAPTER.to_row, as_rows, "input features[{}]")
    except InvalidInput as exc:
        return exc.message


def _vectorised(datatype: str, array: np.ndarray) -> list[np.ndarray] | str:
    try:
        return ADAPTER.tensor_rows(datatype, array, None)
    except InvalidInput as exc:
        return exc.message


@settings(max_examples=200, deadline=None)
@given(
    datatype=st.sampled_from(["FP32", "FP64", "INT64"]),
    array=hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(FEATURES)), elements=values),
)
def test_one_pass_equals_row_by_row(datatype: str, array: np.ndarray) -> None:
    if datatype == "INT64":
        array = np.nan_to_num(array, posinf=0, neginf=0).clip(-1e15, 1e15).astype(np.int64)
    elif datatype == "FP32":
        with np.errstate(over="ignore"):
            array = array.astype(np.float32)
    expected, got = _row_by_row(datatype, array), _vectorised(datatype, array)
    if isinstance(expected, str):
        assert got == expected
        return
    assert isinstance(got, list) and len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.dtype == np.float32 and np.array_equal(mine, theirs)
