"""Photo-like digit images: an MNIST digit as a phone photo of it on paper would look.

Dark ink on light paper; lighting that changes across the sheet (a gradient, a vignette, a
shadow); paper texture and sensor noise; camera blur; a slight rotation; a digit that is small
and off-centre in a large frame; colour casts; JPEG artefacts, or 8- and 16-bit PNG. Every
parameter is drawn from a wide range with a seeded generator, so the eval (`bench/eval_inputs`,
on the test digits) and the training augmentation (`training/mnist_cnn`, on the train digits)
draw from the same family without sharing a single image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

# Frame sizes (width, height) of the photos, as phones and scanners make them.
LARGE_FRAMES = ((2000, 1500), (1500, 2000), (1600, 1200), (1200, 900), (1024, 768), (800, 600))
SMALL_FRAMES = ((640, 480), (480, 640), (400, 300), (320, 320), (300, 400), (240, 180))


@dataclass(frozen=True)
class Photo:
    """One generated photo: the encoded file and how it was made (for tables)."""

    data: bytes
    format: str  # "jpeg", "png8" or "png16"
    size: tuple[int, int]  # width, height


def _paper(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Paper brightness (H, W) float32: a base level, a lighting gradient, texture."""
    base = rng.uniform(150.0, 235.0)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = (xs / width - 0.5) * np.cos(angle) + (ys / height - 0.5) * np.sin(angle)
    paper = base + rng.uniform(0.0, 70.0) * along  # e.g. 170 -> 230 across the frame
    if rng.random() < 0.35:  # vignette
        radius = ((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2) * 2.0
        paper *= 1.0 - rng.uniform(0.05, 0.3) * radius
    if rng.random() < 0.35:  # a soft shadow across part of the sheet (a hand, a phone)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        cut = rng.uniform(-0.4, 0.4)
        side = (xs / width - 0.5) * np.cos(angle) + (ys / height - 0.5) * np.sin(angle) - cut
        softness = rng.uniform(0.01, 0.15)
        paper -= rng.uniform(15.0, 60.0) / (1.0 + np.exp(-side / softness))
    # Paper texture: low-frequency blotches (the fine grain comes with the sensor noise).
    cells = rng.normal(0.0, 1.0, (max(2, height // 24), max(2, width // 24))).astype(np.float32)
    blotches = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC)
    textured: np.ndarray = (paper + rng.uniform(0.0, 4.0) * blotches).astype(np.float32)
    return textured


def _ink_patch(digit: np.ndarray, rng: np.random.Generator, side: int) -> np.ndarray:
    """The 28x28 digit (0-255, light on dark) as ink coverage 0-1, `side` px, rotated."""
    coverage = cv2.resize(
        np.asarray(digit, dtype=np.float32) / 255.0, (side, side), interpolation=cv2.INTER_CUBIC
    )
    coverage = np.clip(coverage, 0.0, 1.0)
    if rng.random() < 0.3:  # a thicker or thinner pen than the MNIST writer's
        radius = max(1, round(side * rng.uniform(0.01, 0.025)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        operation = cv2.dilate if rng.random() < 0.7 else cv2.erode
        coverage = operation(coverage, kernel)
    angle = rng.uniform(-12.0, 12.0)
    rotation = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    rotated: np.ndarray = cv2.warpAffine(coverage, rotation, (side, side), flags=cv2.INTER_LINEAR)
    return rotated


def photo_like(digit: np.ndarray, rng: np.random.Generator, *, large: bool = True) -> Photo:
    """A photo-like image file of one MNIST digit (28x28, 0-255, white on black).

    `large` picks frames of 800x600 to 2000x1500 (the eval); otherwise 240x180 to 640x480
    (cheap enough to make thousands for training). The digit is 12-60% of the frame's short
    side, anywhere in the frame.
    """
    frames = LARGE_FRAMES if large else SMALL_FRAMES
    width, height = frames[int(rng.integers(len(frames)))]
    paper = _paper(rng, width, height)
    side = max(28, round(min(width, height) * rng.uniform(0.12, 0.6) * 28 / 20))
    side = min(side, min(width, height))
    coverage = _ink_patch(digit, rng, side) * rng.uniform(0.8, 1.0)
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    alpha = np.zeros((height, width), dtype=np.float32)
    alpha[top : top + side, left : left + side] = coverage
    # A clear digit: the ink is at least 70 grey levels darker than the paper around it.
    local_paper = float(paper[top : top + side, left : left + side].mean())
    ink_level = min(rng.uniform(5.0, 90.0), local_paper - 70.0)
    grey = paper * (1.0 - alpha) + ink_level * alpha
    blur = rng.uniform(0.0, 0.025) * side
    if blur > 0.3:
        grey = cv2.GaussianBlur(grey, (0, 0), blur)
    grey += rng.normal(0.0, rng.uniform(1.0, 8.0), grey.shape).astype(np.float32)
    if rng.random() < 0.5:  # colour: a cast from the light, a blue or black pen
        cast = rng.uniform(0.9, 1.1, 3).astype(np.float32)
        image = np.clip(grey[..., None] * cast, 0, 255)
    else:
        image = np.clip(grey, 0, 255)
    buffer = io.BytesIO()
    choice = rng.random()
    if choice < 0.6:
        Image.fromarray(np.rint(image).astype(np.uint8)).save(
            buffer, format="JPEG", quality=int(rng.integers(35, 96))
        )
        kind = "jpeg"
    elif choice < 0.8 or image.ndim == 3:
        Image.fromarray(np.rint(image).astype(np.uint8)).save(buffer, format="PNG")
        kind = "png8"
    else:
        Image.fromarray(np.rint(image * 257.0).astype(np.uint16)).save(buffer, format="PNG")
        kind = "png16"
    return Photo(buffer.getvalue(), kind, (width, height))


def printed_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A printed digit (Pillow's bundled font), as a 28x28 MNIST-style grid (0-255, white on
    black), through the serving conversion `grey_to_mnist`.

    MNIST holds handwriting only; a printed "1" has a flag and a foot that a model trained on
    handwriting reads as "7". Weight, width, slant and rotation vary.
    """
    from PIL import ImageDraw, ImageFont

    from app.preprocessing.image import grey_to_mnist

    size = int(rng.integers(40, 120))
    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (size * 2, size * 2), 0)
    stroke = int(rng.integers(0, max(1, size // 12) + 1))
    ImageDraw.Draw(canvas).text(
        (size // 2, size // 3),
        str(digit),
        fill=255,
        font=font,
        stroke_width=stroke,
        stroke_fill=255,
    )
    glyph: np.ndarray = np.asarray(canvas, dtype=np.float32)
    shear = rng.uniform(-0.25, 0.25)
    stretch = rng.uniform(0.75, 1.25)
    angle = np.deg2rad(rng.uniform(-10.0, 10.0))
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.array([[stretch, shear], [0.0, 1.0]])
    centre = np.array([size, size], dtype=np.float64)
    affine = np.hstack([linear, (centre - linear @ centre)[:, None]]).astype(np.float32)
    glyph = cv2.warpAffine(glyph, affine, (size * 2, size * 2), flags=cv2.INTER_LINEAR)
    return grey_to_mnist(glyph)
