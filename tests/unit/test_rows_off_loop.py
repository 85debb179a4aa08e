"""Which decoded V2 tensors have their rows made on a decoding thread: image files always
(a small file may decode into millions of pixels), grids only past a few 28x28s (reading one
costs less than the hand-off), and never another kind's small tensors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.kinds import InputLimits, make_adapter
from app.kinds.base import INLINE_GRID_BYTES
from tests.unit.test_plain_rows import _image_card
from tests.unit.test_raw_image import _adapter as raw_image_adapter
from tests.unit.test_table_tensors import _adapter as table_adapter

GRID = 28 * 28 * 4  # one float32 28x28 grid


@pytest.mark.parametrize("kind", ["image", "raw-image"])
def test_image_files_are_decoded_off_the_loop_whatever_their_size(kind: str) -> None:
    adapter = (
        make_adapter(_image_card(), Path("."), InputLimits())
        if kind == "image"
        else raw_image_adapter()
    )
    assert adapter.rows_off_loop("BYTES", 100)
    assert not adapter.rows_off_loop("FP32", GRID)
    assert not adapter.rows_off_loop("UINT8", INLINE_GRID_BYTES)
    assert adapter.rows_off_loop("FP32", INLINE_GRID_BYTES + 1)


def test_a_table_makes_its_rows_on_the_loop() -> None:
    adapter = table_adapter()
    assert not adapter.rows_off_loop("FP32", INLINE_GRID_BYTES * 4)
