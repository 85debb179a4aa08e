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
from pydantic import BaseModel

from app.errors import InvalidInput, PayloadTooLarge
from app.preprocessing.image import (
    ImageInputError,
    ImageTooLargeError,
    image_bytes_to_mnist,
    images_to_model_input,
)
from app.preprocessing.text import TextVectorizer
from app.schemas.card import ImageInput, ModelCard, TabularInput, TextInput
from app.schemas.predict import B64Image


class InputAdapter(ABC):
    """Turns instances of one input kind into rows, and rows into a model batch."""

    # Whether to_row may be slow enough (image decoding) to belong on a worker thread.
    slow_rows = False

    def __init__(self, card: ModelCard, folder: Path) -> None:
        self.card = card
        self.folder = folder

    @abstractmethod
    def to_row(self, instance: Any) -> Any:
        """One validated instance -> one row (raises InvalidInput / PayloadTooLarge)."""

    @abstractmethod
    def featurize(self, rows: list[Any]) -> np.ndarray:
        """Rows -> the array the model's forward pass takes."""


class TabularAdapter(InputAdapter):
    """Named features (any order) or a list in the card's feature order."""

    def __init__(self, card: ModelCard, folder: Path) -> None:
        super().__init__(card, folder)
        assert isinstance(card.input, TabularInput)
        self.feature_names = [feature.name for feature in card.input.features]

    def to_row(self, instance: Any) -> np.ndarray:
        if isinstance(instance, BaseModel):
            instance = [getattr(instance, name) for name in self.feature_names]
        return np.asarray(instance, dtype=np.float32)

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return np.stack(rows)


class ImageAdapter(InputAdapter):
    """A grid of grey levels as is, or a base64 PNG/JPEG converted the MNIST way."""

    slow_rows = True

    def __init__(self, card: ModelCard, folder: Path, *, max_image_pixels: int) -> None:
        super().__init__(card, folder)
        assert isinstance(card.input, ImageInput)
        self.max_image_pixels = max_image_pixels

    def to_row(self, instance: Any) -> np.ndarray:
        if isinstance(instance, B64Image):
            try:
                data = base64.b64decode(instance.b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidInput(
                    f"b64 is not valid base64 ({exc}); encode the file's bytes with standard base64"
                ) from exc
            return self.image_to_row(data)
        return np.asarray(instance, dtype=np.float32)

    def image_to_row(self, data: bytes) -> np.ndarray:
        """Encoded image bytes -> a 28x28 MNIST-style row."""
        try:
            return image_bytes_to_mnist(data, self.max_image_pixels)
        except ImageTooLargeError as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except ImageInputError as exc:
            raise InvalidInput(str(exc)) from exc

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return images_to_model_input(rows)


class TextAdapter(InputAdapter):
    """Raw review text; tokenised per batch with the model's saved vocabulary."""

    def __init__(self, card: ModelCard, folder: Path) -> None:
        super().__init__(card, folder)
        spec = card.input
        assert isinstance(spec, TextInput)
        self.vectorizer = TextVectorizer.load(folder / spec.vocabulary_file, spec.sequence_length)

    def to_row(self, instance: Any) -> str:
        return str(instance)

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return self.vectorizer.transform(rows)


def make_adapter(card: ModelCard, folder: Path, *, max_image_pixels: int) -> InputAdapter:
    """The adapter for the card's input kind."""
    if isinstance(card.input, TabularInput):
        return TabularAdapter(card, folder)
    if isinstance(card.input, ImageInput):
        return ImageAdapter(card, folder, max_image_pixels=max_image_pixels)
    return TextAdapter(card, folder)
