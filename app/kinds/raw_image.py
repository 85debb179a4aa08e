"""Raw image input: pixel values handed to the model as they are, in its own scale (a user's
image model, grey or colour, any size). Unlike the built-in `image` kind (MNIST digits:
polarity, cropping, centring, digit out-of-domain checks), nothing here reads an image as a
digit: a photo goes to the model as sent, or as its PNG/JPEG decodes, at exactly its size."""

from __future__ import annotations

import base64
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
from app.html import verdict
from app.kinds.base import (
    InputAdapter,
    InputLimits,
    decode_b64,
    image_file_bytes,
    named_rows,
    plain_numeric_array,
)
from app.kinds.statistics import InputStatistics
from app.preprocessing.image_decode import ImageInputError, ImageTooLargeError
from app.preprocessing.pixels import read_pixels, to_png
from app.runtimes.base import Model, NoInputGradients
from app.schemas.card import CardExample, ModelCard, RawImageInput
from app.schemas.predict import FLOAT32_MAX, B64Image, Number, json_kind
from app.settings import ExplainSettings

# Integrated gradients hold every point of a refinement's path at once (float64): the finest
# grid is capped so that steps x values stays within this many (128 MB), whatever the size.
IG_MAX_PATH_VALUES = 2**24

CHANNEL_NAMES = {1: ["level"], 3: ["red", "green", "blue"], 4: ["red", "green", "blue", "alpha"]}


def _spec(card: ModelCard) -> RawImageInput:
    assert isinstance(card.input, RawImageInput)
    return card.input


def shape_words(spec: RawImageInput) -> str:
    """The instance's shape in words, e.g. "16x16x3 (height x width x channels)"."""
    if spec.channel_axis:
        return f"{spec.height}x{spec.width}x{spec.channels} (height x width x channels)"
    return f"{spec.height}x{spec.width} (height x width)"


class RawImageAdapter(InputAdapter):
    """Nested lists H x W x C (H x W for one channel) of values in the model's scale, or a
    base64 PNG/JPEG of exactly W x H pixels; V2: `image`, numbers [N, H, W, C] or BYTES [N]
    of files; uploads through `:predict-image`."""

    slow_rows = True
    takes_image_files = True
    zeros_example = True

    def __init__(self, card: ModelCard, folder: Path, limits: InputLimits) -> None:
        super().__init__(card, folder, limits)
        self.spec = _spec(card)
        self.shape = self.spec.row_shape
        self.low, self.high = self.spec.value_low, self.spec.value_high

    @classmethod
    def instance_type(cls, card: ModelCard, max_text_chars: int) -> Any:
        spec = _spec(card)
        # Lengths are checked by `to_row`, whose error names the whole expected shape
        # (pydantic's would name one list's length at a time).
        row: Any = list[Number | list[Number]] if spec.channels == 1 else list[list[Number]]
        grid = Annotated[
            list[row],
            Field(description=f"{shape_words(spec)} values {spec.scale_text} (the model's scale)"),
        ]
        return Annotated[
            Annotated[grid, Tag("array")] | Annotated[B64Image, Tag("object")],
            Discriminator(json_kind),
        ]

    @classmethod
    def statistics(cls, card: ModelCard, folder: Path | None) -> InputStatistics:
        return RawImageStatistics(_spec(card))

    explanation_method = (
        "Integrated gradients of the predicted class's probability from a black image (the "
        "lowest value of the model's scale), summed over channels: an H x W attribution map "
        "and a PNG overlay (red for the class, blue against); the finest grid is capped by "
        "the image's size (steps x values within 2^24)."
    )

    def explainer(self, model: Model, settings: ExplainSettings) -> Explainer:
        try:
            gradient = model.input_gradient()
        except NoInputGradients as exc:
            raise NotExplainable(str(exc)) from None
        black = self.low if self.low is not None else 0.0
        initial = settings.explain_ig_steps
        affordable = IG_MAX_PATH_VALUES // int(np.prod(self.shape))
        return IntegratedGradients(
            self.card,
            model.predict,
            gradient,
            featurize=self.featurize,
            initial_steps=initial,
            max_steps=max(initial, min(settings.explain_ig_max_steps, affordable)),
            baseline_value=black,
            baseline_kind=f"black image (all {black:g})",
        )

    @classmethod
    def report_inputs(cls, card: ModelCard) -> str:
        spec = _spec(card)
        colour = {1: "Grey-level", 3: "RGB", 4: "RGBA"}.get(spec.channels, "Multi-channel")
        return (
            f"<p>{colour} image, {shape_words(spec)}, values {spec.scale_text} ({spec.dtype}), "
            "passed to the model as they are. An uploaded PNG/JPEG must be exactly "
            f"{spec.width}x{spec.height} pixels; its 0-255 levels are mapped onto the model's "
            f"scale. {escape(spec.description or '')}</p>"
        )

    @classmethod
    def _png(cls, card: ModelCard, instance: Any) -> str | None:
        spec = _spec(card)
        try:
            values = np.asarray(instance, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if values.size == 0 or not np.isfinite(values).all():
            return None
        low = spec.value_low if spec.value_low is not None else float(values.min())
        high = spec.value_high if spec.value_high is not None else float(values.max())
        return base64.b64encode(to_png(values, low, high)).decode("ascii")

    @classmethod
    def report_examples(cls, card: ModelCard, examples: list[dict[str, Any]]) -> str:
        cells = []
        for e in examples:
            png = cls._png(card, e["instance"])
            if png is None:
                continue
            alt = f"Held-out image, true label {e['label']}, predicted {e['predicted']}"
            cells.append(
                f'<figure><img src="data:image/png;base64,{png}" alt="{escape(alt)}">'
                f"<figcaption>{verdict(e)}</figcaption></figure>"
            )
        return f'<div class="examples">{"".join(cells)}</div>'

    @classmethod
    def report_sample(cls, card: ModelCard, example: CardExample) -> str:
        png = cls._png(card, example.instance)
        if png is None:
            return ""
        label = escape(str(example.label))
        return (
            f'<figure class="sample"><img src="data:image/png;base64,{png}" '
            f'alt="Sample image, label {label}">'
            f"<figcaption>Sample input from the card (label {label}).</figcaption></figure>"
        )

    @classmethod
    def record_rows(cls, card: ModelCard, records: list[Any]) -> list[Any] | None:
        shape = _spec(card).row_shape
        return [np.asarray(r, dtype=np.float32).reshape(shape) for r in records]

    @property
    def instance_help(self) -> str:
        spec = self.spec
        return (
            f"a {shape_words(spec)} nested list of values {spec.scale_text}, or "
            f'{{"b64": "<base64 PNG/JPEG of exactly {spec.width}x{spec.height} pixels>"}}'
        )

    @property
    def tensor_spec(self) -> TensorSpec:
        spec = self.spec
        dims = ", ".join(str(d) for d in self.shape)
        return TensorSpec(
            "image",
            (*NUMERIC_TYPES, "BYTES"),
            self.shape,
            f"FP32 (or another numeric type) [N, {dims}]: {shape_words(spec)} values "
            f"{spec.scale_text} (the model takes {spec.dtype}); or BYTES [N] of PNG/JPEG files "
            f"of exactly {spec.width}x{spec.height} pixels (base64 strings in JSON, raw bytes "
            "as binary data)",
        )

    def tensor_example(self, instance: Any) -> dict[str, Any]:
        values = np.asarray(instance, dtype=np.float32).reshape(self.shape)
        return {"datatype": "FP32", "shape": [1, *self.shape], "data": [values.tolist()]}

    def bytes_rows(
        self, elements: np.ndarray, where: str, budget: RequestBudget | None
    ) -> list[Any]:
        return named_rows(lambda e: self.image_to_row(image_file_bytes(e), budget), elements, where)

    def plain_rows(self, body: bytes, max_instances: int) -> list[Any] | None:
        array = plain_numeric_array(body, max_instances, self.shape, None)
        if array is None or not self._in_range(array):
            return None  # the validating path says what is wrong
        return list(array)

    def max_values(self, max_instances: int) -> int | None:
        return max_instances * int(np.prod(self.shape))

    def _bounds(self) -> tuple[float, float]:
        low = self.low if self.low is not None else -FLOAT32_MAX
        high = self.high if self.high is not None else FLOAT32_MAX
        return low, high

    def _in_range(self, values: np.ndarray) -> bool:
        low, high = self._bounds()
        return bool(values.min() >= low and values.max() <= high)

    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> np.ndarray:
        if isinstance(instance, B64Image):
            return self.image_to_row(decode_b64(instance.b64), budget)
        try:
            values = np.asarray(instance, dtype=np.float64)
        except (TypeError, ValueError):  # ragged lists
            values = None
        spec = self.spec
        grey_as_grid = spec.channels == 1 and spec.channel_axis
        if values is not None and grey_as_grid and values.shape == self.shape[:2]:
            values = values[..., np.newaxis]  # grey sent as H x W
        if values is None or values.shape != self.shape:
            got = "ragged lists" if values is None else "x".join(map(str, values.shape))
            raise InvalidInput(f"expected an image of {shape_words(spec)} values; got {got}")
        if not np.isfinite(values).all() or np.abs(values).max() > FLOAT32_MAX:
            raise InvalidInput("pixel values must be finite float32 numbers")
        if not self._in_range(values):
            low, high = self._bounds()
            index = tuple(int(i) for i in np.argwhere((values < low) | (values > high))[0])
            raise InvalidInput(
                f"values must be within {spec.scale_text} (the model's scale, from its import "
                f"example); found {values[index]:g} at {list(index)}"
            )
        return values.astype(np.float32)

    def image_to_row(self, data: bytes, budget: RequestBudget | None = None) -> np.ndarray:
        """PNG/JPEG bytes of exactly W x H pixels -> one row, its 0-255 levels mapped
        linearly onto the model's scale."""
        spec = self.spec
        if self.low is None or self.high is None:
            raise InvalidInput(
                "this model's value scale is unknown (it was imported without an example), so "
                "an image file cannot be mapped onto it; send the pixel values instead"
            )
        try:
            levels = read_pixels(
                data, spec.height, spec.width, spec.channels, self.limits.max_image_pixels, budget
            )
        except ImageTooLargeError as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except ImageInputError as exc:
            raise InvalidInput(str(exc)) from exc
        values = self.low + levels * np.float32((self.high - self.low) / 255.0)
        return values.reshape(self.shape).astype(np.float32)

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return np.stack(rows).astype(np.float32, copy=False)


class RawImageStatistics(InputStatistics):
    """Per channel the mean level, then `contrast` (standard deviation of all values) and
    `edges` (mean absolute difference of neighbouring pixels), each over the model's range
    (0-1; the raw values when the range is unknown); stored as uint8 levels over the range
    (float16 without one): H*W*C bytes a row."""

    def __init__(self, spec: RawImageInput) -> None:
        names = CHANNEL_NAMES.get(spec.channels, [f"c{i}" for i in range(spec.channels)])
        self.names = [f"mean_{n}" for n in names] + ["contrast", "edges"]
        self.channels = spec.channels
        self.low, self.high = spec.value_low, spec.value_high

    def _scaled(self, rows: Sequence[Any]) -> np.ndarray:
        values = np.stack([np.asarray(r, dtype=np.float64) for r in rows])
        values = values.reshape(len(values), values.shape[1], values.shape[2], self.channels)
        if self.low is not None and self.high is not None and self.high > self.low:
            values = (values - self.low) / (self.high - self.low)
        return values

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        values = self._scaled(rows)
        means = values.mean(axis=(1, 2))
        contrast = values.reshape(len(values), -1).std(axis=1)
        across = np.abs(np.diff(values, axis=2)).mean(axis=(1, 2, 3)) if values.shape[2] > 1 else 0
        down = np.abs(np.diff(values, axis=1)).mean(axis=(1, 2, 3)) if values.shape[1] > 1 else 0
        edges = (np.asarray(across) + np.asarray(down)) / 2 * np.ones(len(values))
        return np.column_stack([means, contrast, edges])

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        if self.low is None or self.high is None:
            return [np.asarray(r, dtype=np.float16).tobytes() for r in rows]
        levels = np.clip(np.rint(self._scaled(rows) * 255.0), 0, 255).astype(np.uint8)
        return [level.tobytes() for level in levels]
