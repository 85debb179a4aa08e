"""Images: integrated gradients over the featurised input, with a PNG overlay.

Integrated gradients (Sundararajan et al. 2017) attribute f(x) - f(baseline) to the input's
pixels: (x - baseline) times the average gradient along the straight path between them. The
baseline is a black image (no ink: MNIST is white on black). The path integral is computed
with the trapezoid rule on nested grids: when the attributions miss f(x) - f(baseline) by more
than the completeness tolerance, the grid is halved (reusing every gradient computed so far),
up to `max_steps`; the response reports the steps and the error reached.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.attributions.base import Check, Explainer, Predict, completeness, prediction, tolerance
from app.runtimes.base import Gradient
from app.schemas.card import ModelCard

CHUNK_ROWS = 16  # gradient rows per call: one compiled shape, small enough to yield often
OVERLAY_SIDE = 224  # pixels on the overlay's longer side (a 28x28 map: 8x8 blocks)


class IntegratedGradients(Explainer):
    """Integrated gradients of the predicted class's probability (see the module docstring)."""

    def __init__(
        self,
        card: ModelCard,
        predict: Predict,
        gradient: Gradient,
        *,
        featurize: Any,
        initial_steps: int = 32,
        max_steps: int = 1024,
        baseline_value: float = 0.0,
        baseline_kind: str = "black image (all zeros)",
    ) -> None:
        super().__init__(card)
        # The featurised value of "no signal" (black in the model's own scale).
        self.baseline_value = baseline_value
        self.baseline_kind = baseline_kind
        self.predict = predict
        self.gradient = gradient
        self.featurize = featurize
        self.initial_steps = initial_steps
        self.max_steps = max(max_steps, initial_steps)

    def _gradients(
        self, path: np.ndarray, weights: np.ndarray, check: Check
    ) -> tuple[np.ndarray, np.ndarray]:
        """Outputs (N,) and gradients (N, ...) at every point of `path`, in fixed chunks."""
        values, grads = [], []
        for start in range(0, len(path), CHUNK_ROWS):
            check()
            chunk = path[start : start + CHUNK_ROWS]
            rows = len(chunk)
            if rows < CHUNK_ROWS:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], CHUNK_ROWS - rows, 0)])
            outputs, gradient = self.gradient(chunk.astype(np.float32), weights)
            values.append((outputs @ weights)[:rows])
            grads.append(gradient[:rows])
        return np.concatenate(values), np.concatenate(grads)

    def attribute(
        self, x: np.ndarray, target: int, check: Check
    ) -> tuple[np.ndarray, float, float, int]:
        """(attributions shaped like x, f(x), f(baseline), steps) for one featurised input x."""
        baseline = np.full_like(x, self.baseline_value, dtype=np.float64)
        weights = np.zeros(len(self.card.labels), dtype=np.float32)
        weights[target] = 1.0
        delta = x.astype(np.float64) - baseline

        def points(alphas: np.ndarray) -> np.ndarray:
            shape = (-1,) + (1,) * x.ndim
            return baseline + alphas.reshape(shape) * delta

        steps = self.initial_steps
        ends, end_grads = self._gradients(points(np.array([0.0, 1.0])), weights, check)
        f_baseline, f_x = float(ends[0]), float(ends[1])
        _, inner = self._gradients(points(np.arange(1, steps) / steps), weights, check)
        inner_sum = inner.sum(axis=0)
        while True:
            average = (end_grads[0] / 2 + end_grads[1] / 2 + inner_sum) / steps
            attributions = delta * average
            error = abs(float(attributions.sum()) - (f_x - f_baseline))
            if error <= tolerance(f_x - f_baseline) or steps * 2 > self.max_steps:
                return attributions, f_x, f_baseline, steps
            # Halve the grid: the new points are the midpoints of the old intervals.
            midpoints = (2 * np.arange(steps) + 1) / (2 * steps)
            _, more = self._gradients(points(midpoints), weights, check)
            inner_sum = inner_sum + more.sum(axis=0)
            steps *= 2

    def explain(self, row: Any, check: Check) -> dict[str, Any]:
        features = np.asarray(self.featurize([row]))
        probabilities = self.predict(features)[0]
        target, result = prediction(self.card, probabilities)
        attributions, f_x, f_baseline, steps = self.attribute(features[0], target, check)
        grid = attributions.reshape(attributions.shape[0], attributions.shape[1], -1).sum(-1)
        pixels = features[0].reshape(grid.shape[0], grid.shape[1], -1).mean(-1)
        result.update(
            {
                "explained_label": self.card.labels[target],
                "method": {
                    "name": "integrated gradients",
                    "baseline": self.baseline_kind,
                    "output": "probability of the explained class",
                    "steps": steps,
                    "rule": "trapezoid, grid halved until complete within tolerance",
                    "max_steps": self.max_steps,
                },
                "baseline": {
                    "kind": self.baseline_kind,
                    "probability": f_baseline,
                },
                "attribution_map": grid.tolist(),
                "overlay_png": overlay_png(pixels, grid),
                "completeness": completeness(grid, f_x, f_baseline),
            }
        )
        return result


def overlay_png(pixels: np.ndarray, attributions: np.ndarray) -> str:
    """Base64 PNG: the image in grey, positive attribution in red, negative in blue (opacity
    by magnitude), each pixel a square block (8x8 for 28x28: about OVERLAY_SIDE a side)."""
    block = max(1, OVERLAY_SIDE // max(attributions.shape[0], attributions.shape[1]))
    grey = pixels.astype(np.float64)
    span = grey.max() - grey.min()
    grey = (grey - grey.min()) / span if span > 0 else np.zeros_like(grey)
    background = np.repeat((grey * 0.6 * 255)[..., np.newaxis], 3, axis=-1)
    # Scaled to the 99th percentile of the pixels that carry any attribution, so a few extreme
    # pixels do not wash the rest out; the square root makes weak evidence visible too.
    magnitude = np.abs(attributions)
    carried = magnitude[magnitude > 0]
    scale = float(np.percentile(carried, 99)) if carried.size else 0.0
    strength = np.sqrt(magnitude / scale) if scale > 0 else np.zeros_like(magnitude)
    colour = np.where(
        (attributions >= 0)[..., np.newaxis],
        np.array([255.0, 40.0, 40.0]),
        np.array([40.0, 90.0, 255.0]),
    )
    alpha = np.clip(strength, 0.0, 1.0)[..., np.newaxis]
    blended = (background * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(blended, mode="RGB").resize(
        (blended.shape[1] * block, blended.shape[0] * block),
        Image.Resampling.NEAREST,
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


CAPTION_HEIGHT = 44  # pixels under the overlay for two lines of text


def captioned_png(overlay_b64: str, label: str, probability: float) -> bytes:
    """The overlay with a caption under it naming what it explains: the label, its
    probability, and what the colours mean. For `:explain-image?format=png`, where the picture
    travels alone (Swagger UI, a browser tab, a saved file) without the JSON around it."""
    overlay = Image.open(io.BytesIO(base64.b64decode(overlay_b64))).convert("RGB")
    width, height = overlay.size
    framed = Image.new("RGB", (width, height + CAPTION_HEIGHT), (255, 255, 255))
    framed.paste(overlay, (0, 0))
    draw = ImageDraw.Draw(framed)
    # Pillow's bundled font (no font file needed, same on every machine).
    title = ImageFont.load_default(size=15)
    note = ImageFont.load_default(size=11)
    draw.text(
        (6, height + 4), f'explains "{label}"  p = {probability:.2f}', fill=(0, 0, 0), font=title
    )
    draw.text((6, height + 25), "red: for this label, blue: against", fill=(60, 60, 60), font=note)
    buffer = io.BytesIO()
    framed.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
