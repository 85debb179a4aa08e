"""Input adapters, one per input kind (tabular, image, text); see `app.adapters.base`."""

from __future__ import annotations

from pathlib import Path

from app.adapters.base import (
    NO_WARNINGS,
    InputAdapter,
    InputLimits,
    InputWarning,
    RowWarnings,
    bound_probabilities,
    decode_b64,
    named_rows,
    plain_numeric_rows,
)
from app.adapters.image import ImageAdapter
from app.adapters.raw_text import RawTextAdapter
from app.adapters.table import TableAdapter
from app.adapters.tabular import TabularAdapter
from app.adapters.text import TextAdapter
from app.preprocessing.text import EncodedText
from app.schemas.card import ModelCard

# The one table of input kinds: the card's `input.kind` -> its adapter.
ADAPTERS: dict[str, type[InputAdapter]] = {
    "tabular": TabularAdapter,
    "table": TableAdapter,
    "image": ImageAdapter,
    "text": TextAdapter,
    "raw-text": RawTextAdapter,
}

__all__ = [
    "ADAPTERS",
    "NO_WARNINGS",
    "EncodedText",
    "ImageAdapter",
    "InputAdapter",
    "InputLimits",
    "InputWarning",
    "RawTextAdapter",
    "RowWarnings",
    "TableAdapter",
    "TabularAdapter",
    "TextAdapter",
    "bound_probabilities",
    "decode_b64",
    "make_adapter",
    "named_rows",
    "plain_numeric_rows",
]


def make_adapter(
    card: ModelCard,
    folder: Path,
    limits: InputLimits | None = None,
    *,
    max_image_pixels: int | None = None,
    load: bool = True,
) -> InputAdapter:
    """The adapter for the card's input kind (the one place that switches on it); loaded
    unless `load=False` (the repository loads it after verifying the files)."""
    limits = limits or InputLimits()
    if max_image_pixels is not None:
        limits = InputLimits(limits.max_instances, limits.max_text_chars, max_image_pixels)
    adapter = ADAPTERS[card.input.kind](card, folder, limits)
    if load:
        adapter.load()
    return adapter
