"""Per input kind: from validated request instances to model-ready batches.

Two steps, split on purpose:
- `to_row` runs on the request path, once per instance: cheap conversion and the checks that
  must reject one request without touching the others (an image that does not decode).
- `featurize` runs on the model's worker thread, once per batch: the vectorised work
  (stacking arrays, tokenising texts), off the event loop.
Both call the same functions the training scripts use.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel

from app.budget import RequestBudget
from app.errors import InvalidInput, PayloadTooLarge
from app.preprocessing.image import (
    ImageInputError,
    ImageTooLargeError,
    grid_to_mnist_scale,
    image_bytes_to_mnist,
    images_to_model_input,
)
from app.preprocessing.text import EncodedText, NoKnownWordError, TextVectorizer
from app.schemas.card import ImageInput, ModelCard, TabularInput, TextInput
from app.schemas.predict import FLOAT32_MAX, B64Image


def plain_numeric_rows(
    body: bytes, max_instances: int, row_shape: tuple[int, ...], max_value: float | None
) -> list[np.ndarray] | None:
    """Rows straight from a body of the plainest kind, or None for "validate it properly".

    The plainest kind: exactly `{"instances": [...]}` holding 1 to max_instances numeric
    arrays of `row_shape`, every value a finite float32 within 0..max_value (when given), no
    JSON booleans. Such a body is valid under the request schema and gives the same rows the
    validating path gives, at half its cost (orjson and one NumPy conversion instead of a
    Python float per value: 784 of them for an image). Anything else returns None, and the
    schema then accepts it or says precisely what is wrong.
    """
    if b"true" in body or b"false" in body:  # booleans are not numbers, but NumPy casts them
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:  # also NaN/Infinity tokens
        return None
    if type(parsed) is not dict or len(parsed) != 1:
        return None
    instances = parsed.get("instances")
    if type(instances) is not list or not 0 < len(instances) <= max_instances:
        return None
    try:
        array = np.array(instances)
    except (ValueError, TypeError, OverflowError):  # ragged, or ints beyond int64
        return None
    if array.dtype.kind not in "iuf" or array.shape[1:] != row_shape:  # no str/None/objects
        return None
    # Checked in float64: a value just past float32's largest would round to it, not to inf.
    if not np.isfinite(array).all() or np.abs(array).max() > FLOAT32_MAX:
        return None
    array = array.astype(np.float32)
    if max_value is not None and (array.min() < 0 or array.max() > max_value):
        return None
    return list(array)


def decode_b64(text: str, name: str = "b64") -> bytes:
    """Standard base64 -> bytes (InvalidInput naming the field, and how to encode, if not)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            f"{name} is not valid base64 (wrong characters or length); encode the file's bytes "
            "with standard base64"
        ) from exc


class InputAdapter(ABC):
    """Turns instances of one input kind into rows, and rows into a model batch."""

    # Whether to_row may be slow enough (image decoding) to belong on a worker thread.
    slow_rows = False

    def __init__(self, card: ModelCard, folder: Path) -> None:
        self.card = card
        self.folder = folder

    def plain_rows(self, body: bytes, max_instances: int) -> list[Any] | None:
        """Rows for a plainly valid body without full validation (see plain_numeric_rows);
        None means: take the validating path."""
        return None

    def max_values(self, max_instances: int) -> int | None:
        """The most JSON values `max_instances` instances can hold (None: no such bound, as
        text, whose commas are not separators)."""
        return None

    @abstractmethod
    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> Any:
        """One validated instance -> one row (raises InvalidInput / PayloadTooLarge). Work
        that is costly (decoding an image) is charged to the request's budget."""

    @abstractmethod
    def featurize(self, rows: list[Any]) -> np.ndarray:
        """Rows -> the array the model's forward pass takes."""

    def uncomputable(self, row: Any) -> InvalidInput:
        """The client error for a row the model gave no finite output for (its float32
        arithmetic overflowed): the input is outside what the model can compute, a 422."""
        return InvalidInput(
            "the model cannot compute a prediction for this instance (its arithmetic "
            "overflowed); send values in the range the model was trained on"
        )


class TabularAdapter(InputAdapter):
    """Named features (any order) or a list in the card's feature order."""

    def __init__(self, card: ModelCard, folder: Path) -> None:
        super().__init__(card, folder)
        assert isinstance(card.input, TabularInput)
        self.feature_names = [feature.name for feature in card.input.features]

    def plain_rows(self, body: bytes, max_instances: int) -> list[Any] | None:
        return plain_numeric_rows(body, max_instances, (len(self.feature_names),), None)

    def max_values(self, max_instances: int) -> int | None:
        return max_instances * len(self.feature_names)

    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> np.ndarray:
        if isinstance(instance, BaseModel):
            instance = [getattr(instance, name) for name in self.feature_names]
        row = np.asarray(instance, dtype=np.float64)
        outside = ~(np.abs(row) <= FLOAT32_MAX)  # finite in JSON, but beyond float32's ±3.4e38
        if outside.any():
            column = int(np.flatnonzero(outside)[0])
            raise InvalidInput(
                f"{self.feature_names[column]} is out of range: features must be within "
                f"±{FLOAT32_MAX:.3g} (float32)"
            )
        return row.astype(np.float32)

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return np.stack(rows)

    def uncomputable(self, row: Any) -> InvalidInput:
        magnitudes = np.abs(np.asarray(row, dtype=np.float64))
        column = int(np.argmax(magnitudes))
        return InvalidInput(
            f"{self.feature_names[column]} = {float(row[column]):.3g} is out of the range the "
            "model can compute (its arithmetic overflowed float32 on this instance); send "
            "values in the range the model was trained on"
        )


class ImageAdapter(InputAdapter):
    """A grid of grey levels as is, or a base64 PNG/JPEG converted the MNIST way."""

    slow_rows = True

    def __init__(self, card: ModelCard, folder: Path, *, max_image_pixels: int) -> None:
        super().__init__(card, folder)
        assert isinstance(card.input, ImageInput)
        self.max_image_pixels = max_image_pixels
        self.max_value = card.input.max_value
        self.shape = (card.input.height, card.input.width)

    def plain_rows(self, body: bytes, max_instances: int) -> list[Any] | None:
        rows = plain_numeric_rows(body, max_instances, self.shape, self.max_value)
        if rows is None:
            return None
        try:
            return [grid_to_mnist_scale(grid) for grid in rows]
        except ImageInputError:
            return None  # the validating path names the blank instance

    def max_values(self, max_instances: int) -> int | None:
        return max_instances * self.shape[0] * self.shape[1]  # grids; base64 has no commas

    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> np.ndarray:
        if isinstance(instance, B64Image):
            return self.image_to_row(decode_b64(instance.b64), budget)
        grid = np.asarray(instance, dtype=np.float32)
        if grid.min() < 0 or grid.max() > self.max_value:
            row, column = np.argwhere((grid < 0) | (grid > self.max_value))[0]
            raise InvalidInput(
                f"grey levels must be within 0-{self.max_value:g}; found "
                f"{grid[row, column]:g} at row {row}, column {column}"
            )
        try:
            return grid_to_mnist_scale(grid)
        except ImageInputError as exc:
            raise InvalidInput(str(exc)) from exc

    def image_to_row(self, data: bytes, budget: RequestBudget | None = None) -> np.ndarray:
        """Encoded image bytes -> a 28x28 MNIST-style row (its decoding charged to `budget`)."""
        try:
            return image_bytes_to_mnist(data, self.max_image_pixels, budget)
        except ImageTooLargeError as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except ImageInputError as exc:
            raise InvalidInput(str(exc)) from exc

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return images_to_model_input(rows)


class TextAdapter(InputAdapter):
    """Raw review text, encoded per instance with the model's saved vocabulary.

    Encoding happens in `to_row` because only then can one request be refused on its own:
    a text with no word the model knows would otherwise reach the model as an empty bag, and
    the model's bias would answer it with confidence.
    """

    def __init__(self, card: ModelCard, folder: Path) -> None:
        super().__init__(card, folder)
        spec = card.input
        assert isinstance(spec, TextInput)
        self.vectorizer = TextVectorizer.load(folder / spec.vocabulary_file, spec.sequence_length)
        self.language = spec.language

    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> EncodedText:
        text = str(instance)
        try:
            return EncodedText(text, self.vectorizer.encode_known(text))
        except NoKnownWordError as exc:
            language = f"{self.language} " if self.language else ""
            raise InvalidInput(
                "no known word was found in the text, so the model cannot read it: it knows "
                f"the {self.vectorizer.word_count:,} most frequent {language}words of its "
                "training reviews (and pairs of them); markup, punctuation and other words carry "
                "nothing. Send the review's words"
            ) from exc

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return self.vectorizer.pad([row.ids for row in rows])


def make_adapter(card: ModelCard, folder: Path, *, max_image_pixels: int) -> InputAdapter:
    """The adapter for the card's input kind."""
    if isinstance(card.input, TabularInput):
        return TabularAdapter(card, folder)
    if isinstance(card.input, ImageInput):
        return ImageAdapter(card, folder, max_image_pixels=max_image_pixels)
    return TextAdapter(card, folder)
