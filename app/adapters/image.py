"""Image input: a grid of grey levels as is, or an encoded PNG/JPEG converted the MNIST way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.adapters.base import (
    NO_WARNINGS,
    InputAdapter,
    InputLimits,
    InputWarning,
    RowWarnings,
    decode_b64,
    named_rows,
    plain_numeric_array,
)
from app.budget import RequestBudget
from app.codecs.v2 import NUMERIC_TYPES, TensorSpec
from app.errors import InvalidInput, PayloadTooLarge
from app.preprocessing.image import (
    ImageInputError,
    ImageTooLargeError,
    images_to_model_input,
    read_grid,
    read_grids,
    read_image_bytes,
)
from app.schemas.card import ImageInput, ModelCard, OutOfDomainChecks
from app.schemas.predict import B64Image


class ImageAdapter(InputAdapter):
    """A grid of grey levels as is, or a base64 PNG/JPEG converted the MNIST way; V2: `image`,
    numbers [N, H, W] or BYTES [N] of files; uploads through `:predict-image`."""

    slow_rows = True
    takes_image_files = True

    def __init__(self, card: ModelCard, folder: Path, limits: InputLimits) -> None:
        super().__init__(card, folder, limits)
        assert isinstance(card.input, ImageInput)
        self.spec = card.input
        self.max_image_pixels = limits.max_image_pixels
        self.max_value = card.input.max_value
        self.shape = (card.input.height, card.input.width)
        # Penultimate-layer statistics of the training images (card.out_of_domain), loaded.
        self._whiten: np.ndarray | None = None
        self._means: np.ndarray | None = None  # whitened class means (C, D)
        self._mean_norms: np.ndarray = np.zeros(0)

    @property
    def instance_help(self) -> str:
        spec = self.spec
        return (
            f"a {spec.height}x{spec.width} list of lists of grey levels 0-{spec.max_value:g}"
            ' (white digit on black), or {"b64": "<base64 PNG/JPEG>"}'
        )

    @property
    def tensor_spec(self) -> TensorSpec:
        spec = self.spec
        return TensorSpec(
            "image",
            (*NUMERIC_TYPES, "BYTES"),
            (spec.height, spec.width),
            f"UINT8 or FP32 [N, {spec.height}, {spec.width}] of grey levels "
            f"0-{spec.max_value:g} (white digit on black), or BYTES [N] of PNG/JPEG files "
            "(base64 strings in JSON, raw bytes as binary data)",
        )

    def tensor_example(self, instance: Any) -> dict[str, Any]:
        return {"datatype": "UINT8", "shape": [1, *self.shape], "data": [instance]}

    def bytes_rows(
        self, elements: np.ndarray, where: str, budget: RequestBudget | None
    ) -> list[Any]:
        return named_rows(lambda e: self.image_to_row(_image_bytes(e), budget), elements, where)

    def plain_rows(self, body: bytes, max_instances: int) -> list[Any] | None:
        grids = plain_numeric_array(body, max_instances, self.shape, self.max_value)
        if grids is None:
            return None
        try:
            return read_grids(grids)
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
            return read_grid(grid)
        except ImageInputError as exc:
            raise InvalidInput(str(exc)) from exc

    def image_to_row(self, data: bytes, budget: RequestBudget | None = None) -> np.ndarray:
        """Encoded image bytes -> a 28x28 MNIST-style row (its decoding charged to `budget`);
        an `ImageRow` that remembers other digits seen beside the one read."""
        try:
            row, others = read_image_bytes(data, self.max_image_pixels, budget)
            if others:
                marked = row.view(ImageRow)
                marked.other_digits = others
                return marked
            return row
        except ImageTooLargeError as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except ImageInputError as exc:
            raise InvalidInput(str(exc)) from exc

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return images_to_model_input(rows)

    def load(self) -> None:
        checks = self.card.out_of_domain
        if checks is not None and checks.embedding_statistics_file is not None:
            with np.load(self.folder / checks.embedding_statistics_file) as saved:
                means = np.asarray(saved["means"], dtype=np.float64)
                precision = np.asarray(saved["precision"], dtype=np.float64)
            # precision = L L^T, so a distance is a Euclidean one after x -> x L: per batch one
            # (N, D) x (D, D) product and an (N, C) one, instead of an (N, C, D, D) sum.
            self._whiten = np.linalg.cholesky(precision)
            self._means = means @ self._whiten
            self._mean_norms = np.einsum("cd,cd->c", self._means, self._means)

    def _warn(
        self,
        checks: OutOfDomainChecks,
        rows: list[Any],
        features: np.ndarray,
        embedded: np.ndarray | None,
    ) -> list[RowWarnings] | None:
        several = [getattr(row, "other_digits", 0) for row in rows]
        distance_warnings = self._distance_warnings(checks, embedded)
        if not any(several):
            return distance_warnings
        merged: list[RowWarnings] = []
        for index, others in enumerate(several):
            found = distance_warnings[index] if distance_warnings is not None else NO_WARNINGS
            if others:
                found = (
                    InputWarning(
                        "several_digits",
                        f"the image holds {others + 1} digit-like shapes side by side; the "
                        "model reads one digit per image, so only the most prominent one was "
                        "read: send each digit as its own image",
                    ),
                    *found,
                )
            merged.append(found)
        return merged

    def _distance_warnings(
        self, checks: OutOfDomainChecks, embedded: np.ndarray | None
    ) -> list[RowWarnings] | None:
        limit = checks.max_embedding_distance
        if embedded is None or limit is None or self._whiten is None or self._means is None:
            return None
        whitened = embedded @ self._whiten
        squared = (
            np.einsum("nd,nd->n", whitened, whitened)[:, None]
            - 2.0 * whitened @ self._means.T
            + self._mean_norms[None, :]
        )
        distances = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
        far = distances > limit
        if not far.any():
            return None
        return [
            (
                InputWarning(
                    "unlike_training_images",
                    f"the image does not look like the handwritten digits the model was "
                    f"trained on (feature distance {float(distance):.1f}, over the "
                    f"{limit:.1f} that 99% of held-out digits stay within): a letter, a "
                    "symbol, several digits or no digit at all get a confident but "
                    "meaningless answer",
                ),
            )
            if is_far
            else NO_WARNINGS
            for distance, is_far in zip(distances.tolist(), far.tolist(), strict=True)
        ]


class ImageRow(np.ndarray):
    """A read image (28x28) that remembers how many other digit-like shapes stood beside
    the digit read from it (for the `several_digits` warning)."""

    other_digits: int = 0

    def __array_finalize__(self, obj: object) -> None:
        self.other_digits = getattr(obj, "other_digits", 0)


def embedding_distances(
    embedded: np.ndarray, means: np.ndarray, precision: np.ndarray
) -> np.ndarray:
    """Mahalanobis distance `(N,)` of penultimate-layer features `(N, D)` to the nearest of
    the class means `(C, D)` under a shared covariance (its inverse `precision`, `(D, D)`):
    Lee et al., 2018, "A Simple Unified Framework for Detecting Out-of-Distribution Samples".
    """
    centred = embedded[:, None, :] - means[None, :, :]  # (N, C, D)
    squared = np.einsum("ncd,de,nce->nc", centred, precision, centred, optimize=True)
    distances: np.ndarray = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
    return distances


def _image_bytes(element: Any) -> bytes:
    # Raw bytes from binary data; in JSON a string, which holds the file as base64.
    if isinstance(element, bytes):
        return element
    return decode_b64(
        element, "the string (in JSON an image file is base64; raw bytes go as binary data)"
    )
