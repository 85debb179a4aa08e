"""Image input: a grid of grey levels as is, or an encoded PNG/JPEG converted the MNIST way."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Discriminator, Field, Tag

from app.attributions.base import Explainer, NotExplainable
from app.attributions.image import IntegratedGradients
from app.budget import RequestBudget
from app.codecs.v2 import NUMERIC_TYPES, TensorSpec
from app.errors import InvalidInput, PayloadTooLarge
from app.html import digit_png, verdict
from app.kinds.base import (
    NO_WARNINGS,
    InputAdapter,
    InputLimits,
    InputWarning,
    RowWarnings,
    decode_b64,
    image_file_bytes,
    named_rows,
    plain_numeric_array,
)
from app.kinds.statistics import InputStatistics
from app.preprocessing.image import images_to_model_input, read_image_bytes
from app.preprocessing.image_decode import ImageInputError, ImageTooLargeError
from app.preprocessing.image_grids import read_grid, read_grids
from app.runtimes.base import Model, NoInputGradients
from app.schemas.card import CardExample, ImageInput, ModelCard, OutOfDomainChecks
from app.schemas.predict import B64Image, Number, json_kind
from app.settings import ExplainSettings


class ImageAdapter(InputAdapter):
    """A grid of grey levels as is, or a base64 PNG/JPEG converted the MNIST way; V2: `image`,
    numbers [N, H, W] or BYTES [N] of files; uploads through `:predict-image`."""

    slow_rows = True
    takes_image_files = True
    out_of_domain_check = "embedding-distance"  # card.out_of_domain: see _warn

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
        self._kernel: np.ndarray | None = None  # the last layer's weights (D, C), for energy
        self._bias: np.ndarray | None = None  # and its bias (C,)
        self._mean_norms: np.ndarray = np.zeros(0)

    @classmethod
    def instance_type(cls, card: ModelCard, max_text_chars: int) -> Any:
        spec = card.input
        assert isinstance(spec, ImageInput)
        # The 0..max range is documented here but checked by `to_row` with one NumPy
        # comparison: 784 per-element range checks in the validator cost a fifth of an image
        # request's parse.
        pixel = Annotated[
            Number, Field(json_schema_extra={"minimum": 0, "maximum": spec.max_value})
        ]
        row = Annotated[list[pixel], Field(min_length=spec.width, max_length=spec.width)]
        grid = Annotated[
            list[row],
            Field(
                min_length=spec.height,
                max_length=spec.height,
                description=f"{spec.height}x{spec.width} grey levels 0-{spec.max_value:g}, "
                "white digit on black",
            ),
        ]
        return Annotated[
            Annotated[grid, Tag("array")] | Annotated[B64Image, Tag("object")],
            Discriminator(json_kind),
        ]

    @classmethod
    def statistics(cls, card: ModelCard, folder: Path | None) -> InputStatistics:
        assert isinstance(card.input, ImageInput)
        return ImageStatistics(card.input.max_value)

    explanation_method = (
        "Integrated gradients of the predicted class's probability from a black image: "
        "a 28x28 attribution map and a PNG overlay (red for the class, blue against)."
    )

    def explainer(self, model: Model, settings: ExplainSettings) -> Explainer:
        try:
            gradient = model.input_gradient()
        except NoInputGradients as exc:
            raise NotExplainable(str(exc)) from None
        return IntegratedGradients(
            self.card,
            model.predict,
            gradient,
            featurize=self.featurize,
            initial_steps=settings.explain_ig_steps,
            max_steps=settings.explain_ig_max_steps,
        )

    @classmethod
    def report_inputs(cls, card: ModelCard) -> str:
        spec = card.input
        assert isinstance(spec, ImageInput)
        return (
            f"<p>Grey-level image, {spec.height} x {spec.width} pixels, values 0 to "
            f"{spec.max_value:g}. {escape(spec.description or '')}</p>"
        )

    @classmethod
    def report_examples(cls, card: ModelCard, examples: list[dict[str, Any]]) -> str:
        cells = []
        for e in examples:
            png = digit_png(e["instance"])
            if png is None:
                continue
            alt = f"Held-out image, true label {e['label']}, predicted {e['predicted']}"
            cells.append(
                f'<figure><img src="data:image/png;base64,{png}" width="112" height="112" '
                f'alt="{escape(alt)}"><figcaption>{verdict(e)}</figcaption></figure>'
            )
        return f'<div class="examples">{"".join(cells)}</div>'

    @classmethod
    def report_sample(cls, card: ModelCard, example: CardExample) -> str:
        png = digit_png(example.instance)
        if png is None:
            return ""
        label = escape(str(example.label))
        return (
            f'<figure class="sample"><img src="data:image/png;base64,{png}" width="112" '
            f'height="112" alt="Sample held-out digit, true label {label}">'
            f"<figcaption>Sample input from the card: a held-out {label}.</figcaption></figure>"
        )

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
        return named_rows(lambda e: self.image_to_row(image_file_bytes(e), budget), elements, where)

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
                if "kernel" in saved.files and "bias" in saved.files:
                    self._kernel = np.asarray(saved["kernel"], dtype=np.float64)
                    self._bias = np.asarray(saved["bias"], dtype=np.float64)
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
        if embedded is None or self._whiten is None or self._means is None:
            return None
        limit, energy_limit = checks.max_embedding_distance, checks.max_energy
        far = np.zeros(len(embedded), dtype=bool)
        distances = energies = None
        if limit is not None:
            whitened = embedded @ self._whiten
            squared = (
                np.einsum("nd,nd->n", whitened, whitened)[:, None]
                - 2.0 * whitened @ self._means.T
                + self._mean_norms[None, :]
            )
            distances = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
            far |= distances > limit
        if energy_limit is not None and self._kernel is not None and self._bias is not None:
            energies = energy_scores(embedded, self._kernel, self._bias)
            far |= energies > energy_limit
        if not far.any():
            return None
        return [
            (InputWarning("unlike_training_images", self._far_message(index, distances, energies)),)
            if is_far
            else NO_WARNINGS
            for index, is_far in enumerate(far.tolist())
        ]

    def _far_message(
        self, index: int, distances: np.ndarray | None, energies: np.ndarray | None
    ) -> str:
        measured = []
        if energies is not None:
            measured.append(f"energy score {float(energies[index]):.2f}")
        if distances is not None:
            measured.append(f"feature distance {float(distances[index]):.1f}")
        return (
            "the image does not look like the handwritten digits the model was trained on ("
            + ", ".join(measured)
            + ", beyond what 99% of held-out digits reach): a letter, a symbol, several "
            "digits or no digit at all get a confident but meaningless answer"
        )


def energy_scores(embedded: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Energy score `(N,)`: -logsumexp of the logits `embedded (N, D) @ kernel (D, C) + bias
    (C,)` (the last layer before its softmax). Low for inputs like the training data, high
    for others; Liu et al., 2020, "Energy-based Out-of-distribution Detection"."""
    logits = embedded @ kernel + bias
    top = logits.max(axis=1)
    scores: np.ndarray = -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))
    return scores


class ImageRow(np.ndarray):
    """A read image (28x28) that remembers how many other digit-like shapes stood beside
    the digit read from it (for the `several_digits` warning)."""

    other_digits: int = 0

    def __array_finalize__(self, obj: object) -> None:
        self.other_digits = getattr(obj, "other_digits", 0)


class ImageStatistics(InputStatistics):
    """`ink_mass` (share of pixels brighter than half the maximum), `mean_level` (mean grey
    level over the maximum, 0-1), `spread` (the ink's radius of gyration, in pixels); stored
    as grey levels 0-255 in uint8 (28x28 = 784 bytes)."""

    def __init__(self, max_value: float) -> None:
        self.names = ["ink_mass", "mean_level", "spread"]
        self.max_value = max_value

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        return image_statistics(np.stack([np.asarray(r) for r in rows]), self.max_value)

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        grids = np.stack([np.asarray(r, dtype=np.float32) for r in rows])
        levels = np.clip(np.rint(grids * (255.0 / self.max_value)), 0, 255).astype(np.uint8)
        return [grid.tobytes() for grid in levels]


def image_statistics(grids: np.ndarray, max_value: float) -> np.ndarray:
    """(N, H, W) grey levels 0..max_value -> (N, 3): ink mass, mean level, spread (pixels).

    Spread is the radius of gyration of the grey levels, sqrt(var(row) + var(column)) with
    the levels as weights, from the row and column sums (no (N, H, W) temporaries)."""
    scaled = np.asarray(grids, dtype=np.float32) / np.float32(max_value)
    n, height, width = scaled.shape
    flat = scaled.reshape(n, -1)
    ink_mass = (flat > 0.5).mean(axis=1, dtype=np.float64)
    mean_level = flat.mean(axis=1, dtype=np.float64)
    by_row = scaled.sum(axis=2, dtype=np.float64)  # (N, H)
    by_column = scaled.sum(axis=1, dtype=np.float64)  # (N, W)
    mass = by_row.sum(axis=1)
    safe = np.where(mass > 0, mass, 1.0)
    rows, columns = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    variance = (
        by_row @ rows**2 / safe
        - (by_row @ rows / safe) ** 2
        + by_column @ columns**2 / safe
        - (by_column @ columns / safe) ** 2
    )
    spread = np.sqrt(np.clip(variance, 0.0, None))
    spread[mass == 0] = 0.0
    return np.stack([ink_mass, mean_level, spread], axis=1)
