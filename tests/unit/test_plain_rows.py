"""The shortcut for plainly valid numeric bodies never disagrees with full validation."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.adapters import plain_numeric_rows
from app.schemas.card import ModelCard
from app.schemas.predict import predict_request_model
from tests.unit.test_card import VALID

SHAPE = (2, 3)
MAX_INSTANCES = 4


def _image_card() -> ModelCard:
    card = {
        **VALID,
        "task": "multiclass-classification",
        "labels": ["a", "b", "c"],
        "input": {"kind": "image", "height": SHAPE[0], "width": SHAPE[1]},
        "metrics": {
            **VALID["metrics"],
            "roc_auc": None,
            "test_size": 3,
            "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        },
        "examples": [{"instance": [[0, 0, 0], [0, 0, 0]], "label": "a"}],
    }
    return ModelCard.model_validate(card)


REQUEST = predict_request_model(
    _image_card(), max_instances=MAX_INSTANCES, max_text_chars=10, examples=[]
)

scalars = st.one_of(
    st.integers(-300, 300),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.sampled_from([1e39, -1e39, 255.0, 255.5, 0.0, -0.0, 10**30]),
)
pixels = st.one_of(st.integers(0, 255), st.floats(0, 255, allow_nan=False))
valid_grids = st.lists(
    st.lists(pixels, min_size=SHAPE[1], max_size=SHAPE[1]), min_size=SHAPE[0], max_size=SHAPE[0]
)


@st.composite
def damaged_grids(draw: Any) -> Any:
    """A valid grid with one cell replaced by anything, or one row cut or grown."""
    grid = draw(valid_grids)
    row, column = draw(st.integers(0, SHAPE[0] - 1)), draw(st.integers(0, SHAPE[1] - 1))
    if draw(st.booleans()):
        grid[row][column] = draw(scalars)
    else:
        grid[row] = grid[row][:-1] if draw(st.booleans()) else grid[row] + [1]
    return grid


grids = st.one_of(
    valid_grids,
    valid_grids,
    damaged_grids(),
    st.lists(st.lists(scalars, max_size=4), max_size=3),
    scalars,
)
bodies = st.one_of(
    st.fixed_dictionaries({"instances": st.lists(grids, min_size=0, max_size=5)}),
    st.fixed_dictionaries({"instances": st.lists(valid_grids, min_size=1, max_size=4)}),
    st.fixed_dictionaries({"instances": st.lists(grids, max_size=2), "extra": scalars}),
    st.lists(grids, max_size=2),
)


def _slow_rows(body: bytes) -> list[np.ndarray] | None:
    """What the validating path makes of the body (None: refused)."""
    try:
        instances = REQUEST.model_validate_json(body).instances  # type: ignore[attr-defined]
    except ValidationError:
        return None
    grid_rows = [np.asarray(i, dtype=np.float32) for i in instances if not hasattr(i, "b64")]
    if len(grid_rows) != len(instances):
        return None
    for grid in grid_rows:
        if not np.isfinite(grid).all() or grid.min() < 0 or grid.max() > 255:
            return None  # the adapter refuses these
    return grid_rows


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_the_shortcut_only_takes_bodies_full_validation_accepts(body: Any) -> None:
    raw = json.dumps(body).encode()
    fast = plain_numeric_rows(raw, MAX_INSTANCES, SHAPE, 255.0)
    if fast is None:
        return
    slow = _slow_rows(raw)
    assert slow is not None, f"shortcut accepted what validation refuses: {raw!r}"
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_the_shortcut_takes_the_common_case() -> None:
    body = json.dumps({"instances": [[[0, 1, 2], [3.5, 4, 255]]]}).encode()
    rows = plain_numeric_rows(body, MAX_INSTANCES, SHAPE, 255.0)
    assert rows is not None and rows[0].tolist() == [[0, 1, 2], [3.5, 4, 255]]


def test_anything_unusual_takes_the_validating_path() -> None:
    for body in (
        b'{"instances": [[[0, 1, 2], [3, 4, true]]]}',
        b'{"instances": [[[0, 1, 2], [3, 4, "5"]]]}',
        b'{"instances": [[[0, 1, 2], [3, 4, 256]]]}',
        b'{"instances": [[[0, 1, 2], [3, 4, NaN]]]}',
        b'{"instances": [[[0, 1, 2], [3, 4]]]}',
        b'{"instances": [{"b64": "aGk="}]}',
        b'{"instances": []}',
        b'{"instances": [[[0,1,2],[3,4,5]]], "x": 1}',
        b"not json",
    ):
        assert plain_numeric_rows(body, MAX_INSTANCES, SHAPE, 255.0) is None, body
