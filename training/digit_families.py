"""Digit image families for issue 23: generated from digits a model never trained on (MNIST
test digits, scikit-learn's load_digits), the way clients send them (PNG files or 28x28
grids). Used by `bench/digit_families.py` (accuracy per family), `bench/ood_families.py` and
`training/ood.py` (the in-domain images the out-of-domain thresholds must leave unwarned).
See `bench/digit_families.py` for what each family is.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
from PIL import Image

from training.photo_like import photo_like

Sample = tuple[str, Any, int]  # route ("grid" or "file"), payload, true label


def read_sample(adapter: Any, route: str, payload: Any) -> Any:
    """A sample's row as the server reads it: a "grid" by the adapter's `to_row`, a "file" by
    its `image_to_row` (raises the server's ServingError, a 4xx, where the server refuses)."""
    return adapter.to_row(payload) if route == "grid" else adapter.image_to_row(payload)


def read_labelled(adapter: Any, samples: list[Sample]) -> tuple[list[Any], list[int]]:
    """The rows the server reads of `samples`, and their true labels; a sample it refuses
    (ServingError, a 4xx) is left out of both."""
    from app.errors import ServingError

    rows, labels = [], []
    for route, payload, label in samples:
        try:
            rows.append(read_sample(adapter, route, payload))
        except ServingError:
            continue
        labels.append(label)
    return rows, labels


def png(grey: np.ndarray) -> bytes:
    """(H, W) grey levels 0-255 -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.rint(np.clip(grey, 0, 255)).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def on_paper(
    ink: np.ndarray, rng: np.random.Generator, ink_level: float | None = None
) -> np.ndarray:
    """Ink coverage 0-1 (H, W) -> dark ink on light paper, 0-255, with sensor noise."""
    paper = rng.uniform(190.0, 250.0)
    level = rng.uniform(10.0, 80.0) if ink_level is None else ink_level
    grey = paper * (1.0 - ink) + level * ink
    return grey + rng.normal(0.0, rng.uniform(0.5, 3.0), grey.shape)


def upscaled(digit: np.ndarray, source_side: int, rng: np.random.Generator) -> np.ndarray:
    """A 0-255 digit grid shrunk to `source_side` px, padded, upscaled to 140-260 px."""
    small = (
        cv2.resize(
            digit.astype(np.float32), (source_side, source_side), interpolation=cv2.INTER_AREA
        )
        if digit.shape[0] != source_side
        else digit.astype(np.float32)
    )
    # Half cropped tight (the digit touches the frame), half with a margin.
    pad = int(rng.integers(0, 2)) * max(1, source_side // 6)
    small = np.pad(small, pad)
    side = int(rng.integers(16, 261))
    interpolation = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(3))]
    big = cv2.resize(small, (side, side), interpolation=interpolation)
    return on_paper(np.clip(big / 255.0, 0.0, 1.0), rng)


def blurred(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(112, 225))
    big = cv2.resize(
        np.pad(digit.astype(np.float32), 4), (side, side), interpolation=cv2.INTER_CUBIC
    )
    ink = np.clip(big / 255.0, 0.0, 1.0)
    grey = on_paper(ink, rng, ink_level=rng.uniform(60.0, 140.0))
    sigma = rng.uniform(0.02, 0.05) * side
    return cv2.GaussianBlur(grey.astype(np.float32), (0, 0), sigma)


def hard_shadow(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(112, 225))
    big = cv2.resize(
        np.pad(digit.astype(np.float32), 6), (side, side), interpolation=cv2.INTER_CUBIC
    )
    grey = on_paper(np.clip(big / 255.0, 0.0, 1.0), rng)
    # A straight edge through the middle third of the frame, at any angle.
    angle = rng.uniform(0.0, np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])
    centre = side * rng.uniform(0.35, 0.65, 2)
    ys, xs = np.indices(grey.shape)
    side_of = (xs - centre[0]) * normal[0] + (ys - centre[1]) * normal[1] > 0
    shade = rng.uniform(0.35, 0.65)
    return np.where(side_of, grey * shade, grey)


def scan_grid(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Black on white, the digit's box plus a small margin resized to fill 28x28."""
    rows = np.flatnonzero(digit.max(axis=1) > 30)
    cols = np.flatnonzero(digit.max(axis=0) > 30)
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    margin = int(rng.integers(1, 4))
    crop = np.pad(crop, margin)
    grid = cv2.resize(crop, (28, 28), interpolation=cv2.INTER_AREA)
    paper = rng.uniform(215.0, 255.0)
    inverted: np.ndarray = np.clip(
        paper - grid * (paper - rng.uniform(0.0, 40.0)) / 255.0, 0.0, 255.0
    )
    return inverted


def families(
    x_test: np.ndarray, y_test: np.ndarray, count: int, seed: int
) -> Iterator[tuple[str, list[Sample]]]:
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(x_test), size=min(count, len(x_test)), replace=False)
    digits, labels = x_test[chosen], y_test[chosen].astype(int)
    pairs = list(zip(digits, labels, strict=True))

    def make(route: str, build: Callable[[np.ndarray], Any]) -> list[Sample]:
        return [(route, build(d), int(y)) for d, y in pairs]

    yield "clean grid (MNIST test)", make("grid", lambda d: d.astype(np.float32))
    yield "clean PNG 28x28", make("file", png)
    yield "photo-like", make("file", lambda d: photo_like(d, rng).data)
    for side in (8, 12, 16, 28):
        yield (
            f"low-res {side} px, upscaled",
            make("file", lambda d, s=side: png(upscaled(d, s, rng))),  # type: ignore[misc]
        )
    from sklearn.datasets import load_digits

    real = load_digits()
    pick = rng.choice(len(real.images), size=min(count, len(real.images)), replace=False)
    yield (
        "load_digits 8 px, upscaled",
        [
            ("file", png(upscaled(real.images[i] * (255.0 / 16.0), 8, rng)), int(real.target[i]))
            for i in pick
        ],
    )
    yield "blurred, soft ink", make("file", lambda d: png(blurred(d, rng)))
    yield "hard shadow edge", make("file", lambda d: png(hard_shadow(d, rng)))
    yield "inverted grid (MNIST 255-x)", make("grid", lambda d: 255.0 - d.astype(np.float32))
    scans = [scan_grid(d, rng) for d in digits]
    yield (
        "inverted grid, scan crop",
        [("grid", g, int(y)) for g, y in zip(scans, labels, strict=True)],
    )
    yield (
        "inverted scan crop as PNG",
        [("file", png(g), int(y)) for g, y in zip(scans, labels, strict=True)],
    )
