"""Input kinds: one class per kind of input a model takes, registered in `KINDS`.

A kind class (see `app.kinds.base.InputAdapter`) holds everything that depends on the kind of
input: the request schema, the V2 tensor, rows and featurisation, the drift statistics of its
rows, the explainer, the report page's sections and the docs' words. Nothing outside this
package switches on `card.input.kind`: it asks `kind_of(card)` (the class, for what follows
from the card alone) or the version's adapter (an instance, for what needs its files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from app.kinds.base import (
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
from app.kinds.image import ImageAdapter
from app.kinds.raw_image import RawImageAdapter
from app.kinds.raw_text import RawTextAdapter
from app.kinds.table import TableAdapter
from app.kinds.tabular import TabularAdapter
from app.kinds.text import TextAdapter
from app.preprocessing.text import EncodedText
from app.schemas.card import ModelCard

# The one table of input kinds: the card's `input.kind` -> its class.
KINDS: dict[str, type[InputAdapter]] = {
    "tabular": TabularAdapter,
    "table": TableAdapter,
    "image": ImageAdapter,
    "raw-image": RawImageAdapter,
    "text": TextAdapter,
    "raw-text": RawTextAdapter,
}

__all__ = [
    "KINDS",
    "NO_WARNINGS",
    "EncodedText",
    "ImageAdapter",
    "InputAdapter",
    "InputLimits",
    "InputWarning",
    "RawImageAdapter",
    "RawTextAdapter",
    "RowWarnings",
    "TableAdapter",
    "TabularAdapter",
    "TextAdapter",
    "bound_probabilities",
    "decode_b64",
    "kind_of",
    "make_adapter",
    "named_rows",
    "plain_numeric_rows",
    "predict_request_model",
]


def make_adapter(
    card: ModelCard,
    folder: Path,
    limits: InputLimits | None = None,
    *,
    max_image_pixels: int | None = None,
    load: bool = True,
) -> InputAdapter:
    """The adapter of the card's input kind (`KINDS`), for one version; loaded unless
    `load=False` (the repository loads it after verifying the files)."""
    limits = limits or InputLimits()
    if max_image_pixels is not None:
        limits = InputLimits(limits.max_instances, limits.max_text_chars, max_image_pixels)
    adapter = kind_of(card)(card, folder, limits)
    if load:
        adapter.load()
    return adapter


def kind_of(card: ModelCard) -> type[InputAdapter]:
    """The class of the card's input kind (what follows from the card alone: its schema,
    statistics, report sections)."""
    return KINDS[card.input.kind]


def predict_request_model(
    card: ModelCard, *, max_instances: int, max_text_chars: int, examples: list[Any]
) -> type[BaseModel]:
    """`{"instances": [...]}` for this model (its kind's schema), with its limits and a
    working example."""
    return kind_of(card).request_model_for(
        card, max_instances=max_instances, max_text_chars=max_text_chars, examples=examples
    )
