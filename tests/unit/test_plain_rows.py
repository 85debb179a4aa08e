"""The shortcut for plainly valid numeric bodies never disagrees with full validation."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.kinds import plain_numeric_rows, predict_request_model
from app.schemas.card import ModelCard
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


def test_integer_bodies_give_the_rows_of_any_other() -> None:
    ints = plain_numeric_rows(b'{"instances": [[[0, 1, 2], [3, 4, 255]]]}', 4, SHAPE, 255.0)
    floats = plain_numeric_rows(b'{"instances": [[[0, 1, 2], [3, 4, 255.0]]]}', 4, SHAPE, 255.0)
    assert ints is not None and floats is not None
    assert ints[0].dtype == floats[0].dtype == np.float32
    np.testing.assert_array_equal(ints[0], floats[0])


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
        b'{"instances": [[[0, 1, 2], [3, 4, -Infinity]]]}',
        b'{"instances": [[[0, 1, 2], [3, 4, 1e400]]]}',  # beyond a double: infinite
        b'{"instances": [[[0, 1, 2], [3, 4, 3.5e38]]]}',  # beyond float32
        b'{"instances": [[[0, 1, 2], [3, 4]]]}',
        b'{"instances": [{"b64": "aGk="}]}',
        b'{"instances": []}',
        b'{"instances": [[[0,1,2],[3,4,5]]], "x": 1}',
        b"not json",
        # Integer-only bodies take NumPy's integer conversion: what it must still refuse.
        b'{"instances": [[[0, 1, 2], [3, 4, null]]]}',
        b'{"instances": [[[0, 1, 2], [3, 4, 100000000000000000000000000000]]]}',
        b'{"instances": [[[0, 1, 2], [3, 4, 5], [6]]]}',
        b'{"instanc\\u0065s": [[[0, 1, 2], [3, 4, true]]]}',
        b'{"instances": [[[0, 1, 2], [3, 4, fals]]]}',
    ):
        assert plain_numeric_rows(body, MAX_INSTANCES, SHAPE, 255.0) is None, body
    # Tabular rows (no upper bound of their own): still within float32, and finite.
    for values in (b"[1e400, 1]", b"[-3.5e38, 1]", b"[1, Infinity]"):
        body = b'{"instances": [' + values + b"]}"
        assert plain_numeric_rows(body, MAX_INSTANCES, (2,), None) is None, body
    assert plain_numeric_rows(b'{"instances": [[3.4e38, 1]]}', MAX_INSTANCES, (2,), None)


# ---------------------------------------------------------------- named tabular features
FEATURES = ("a", "b", "c")


def _tabular_card() -> ModelCard:
    card = {
        **VALID,
        "input": {"kind": "tabular", "features": [{"name": name} for name in FEATURES]},
        "examples": [{"instance": {"a": 1, "b": 2, "c": 3}, "label": VALID["labels"][0]}],
    }
    return ModelCard.model_validate(card)


TABULAR = predict_request_model(
    _tabular_card(), max_instances=MAX_INSTANCES, max_text_chars=10, examples=[]
)
values = st.one_of(st.integers(-300, 300), st.floats(allow_nan=False, width=64), scalars)


@st.composite
def named_instances(draw: Any) -> Any:
    """An object of the three features in any order, often damaged (a key missing, added,
    renamed, a value of the wrong kind), or a list among the objects."""
    names = draw(st.permutations(FEATURES))
    instance = {name: draw(values) for name in names}
    damage = draw(st.integers(0, 6))
    if damage == 1:
        del instance[names[0]]
    elif damage == 2:
        instance["d"] = draw(values)
    elif damage == 3:
        instance["A"] = instance.pop("a")
    elif damage == 4:
        return [draw(values) for _ in FEATURES]
    return instance


def _slow_tabular_rows(body: bytes) -> list[np.ndarray] | None:
    """What the validating path and the adapter's `to_row` make of the body (None: refused)."""
    try:
        instances = TABULAR.model_validate_json(body).instances  # type: ignore[attr-defined]
    except ValidationError:
        return None
    rows = []
    for instance in instances:
        if not isinstance(instance, list):
            instance = [getattr(instance, name) for name in FEATURES]
        row = np.asarray(instance, dtype=np.float64)
        if not (np.abs(row) <= np.finfo(np.float32).max).all():
            return None  # the adapter refuses these
        rows.append(row.astype(np.float32))
    return rows


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(named_instances(), min_size=0, max_size=5))
def test_named_features_take_the_shortcut_only_when_validation_agrees(instances: Any) -> None:
    raw = json.dumps({"instances": instances}).encode()
    fast = plain_numeric_rows(raw, MAX_INSTANCES, (len(FEATURES),), None, FEATURES)
    if fast is None:
        return
    slow = _slow_tabular_rows(raw)
    assert slow is not None, f"shortcut accepted what validation refuses: {raw!r}"
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_named_features_in_any_order_take_the_shortcut() -> None:
    body = b'{"instances": [{"c": 3, "a": 1.5, "b": 2}, {"a": 0, "b": 0, "c": 0}]}'
    rows = plain_numeric_rows(body, MAX_INSTANCES, (3,), None, FEATURES)
    assert rows is not None and [r.tolist() for r in rows] == [[1.5, 2, 3], [0, 0, 0]]
