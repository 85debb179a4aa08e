"""Generated non-digits for mnist-cnn: outlier exposure in training and the out-of-domain
families the warnings are measured on.

Outlier exposure (Hendrycks, Mazeika and Dietterich, 2019, "Deep Anomaly Detection with
Outlier Exposure"): the network also trains on inputs that are not digits, with the uniform
distribution as their target, so that its own confidence (the energy of its logits) separates
digits from everything else far better than a network that only ever saw digits.

Two disjoint splits, so that the share warned is measured on non-digits the network never
trained on: `split="train"` draws its letters from the DejaVu fonts (when installed; else
Pillow's bundled font), its scribbles, shapes and textures from one seed stream and its digit
pairs from the fit images, and adds glyphs the held-out split never draws (Greek and Cyrillic
letters, arrows, mathematical and other signs, in the DejaVu fonts) and geometric shapes;
`split="held-out"` uses the Liberation fonts and Pillow's bundled font, hand-drawn-like
letters (a font's letter, elastically warped, drawn with a pen of random width), kinds of
texture training never saw (dots, grids, rings), and pairs of *test* digits.
Every generator returns grey images (H, W), 0-255, dark ink on light paper, as a client sends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts"))
TRAIN_FONTS = "DejaVu"
HELD_OUT_FONTS = "Liberation"
# Glyphs that are drawn exactly like a digit in most fonts (O/0, I/l/|/1) are left out of the
# training outliers: pushing them to "no digit" would teach the network to doubt real 0s and
# 1s. They stay in the held-out letters, so the figures say how often they are missed.
LOOK_ALIKE = set("OoIl|")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
SYMBOLS = "+-=%&#@?*$!<>()[]{}/\\~^"
TRAIN_GLYPHS = "".join(c for c in LETTERS + SYMBOLS if c not in LOOK_ALIKE)
# Training only: glyphs beyond the Latin alphabet and ASCII, in the DejaVu fonts, so that the
# network learns "not a digit" for shapes of every kind rather than for the few the held-out
# families draw (Latin letters and ASCII symbols). Left out, like LOOK_ALIKE: glyphs drawn like
# a digit (Greek iota and omicron, Cyrillic o, ze, be, che, e; partial d, delta, empty set).
UNICODE_GLYPHS = (
    "αβγεζηθκλμνξπρστυφχψωΓΔΘΛΞΠΣΦΨΩ"  # Greek
    "вгджийклмнпрстфхцшщъыьюяГДЖИЛПФЦШЩЮЯ"  # Cyrillic
    "←↑→↓↔↕↖↗↘↙⇐⇑⇒⇓⇔↺↻"  # arrows
    "∀∃∇∈∉∋∏∑±×÷√∝∠∧∨∩∪∫∮≈≠≡≤≥⊂⊃⊆⊇⊕⊗⊥⋅"  # mathematics
    "§¶©®™†‡•…‰€£¥¢¿¡«»"  # punctuation and currency
    "■□▲△▶▷▼▽◆◇◊★☆♠♣♥♦♪♫☺☻✓✗✚✦"  # geometric shapes and signs
)


def _fonts(family: str) -> list[Path]:
    found: list[Path] = []
    for folder in FONT_DIRS:
        if folder.is_dir():
            found.extend(sorted(folder.rglob(f"{family}*.ttf")))
    return found


def _font(
    paths: list[Path], size: int, rng: np.random.Generator, bundled: bool = True
) -> ImageFont.ImageFont:
    # Pillow's bundled font is one of the choices when `bundled` (and the only one on a
    # machine without system fonts), so the generators work everywhere.
    pick = int(rng.integers(len(paths) + (1 if bundled or not paths else 0)))
    if pick == len(paths):
        return ImageFont.load_default(size=size)  # type: ignore[return-value]
    return ImageFont.truetype(str(paths[pick]), size)  # type: ignore[return-value]


def _warp(grey: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A random affine (rotation, shear, stretch) plus an elastic displacement of `amount`
    (fraction of the side): strokes as a hand draws them."""
    height, width = grey.shape
    angle = np.deg2rad(rng.uniform(-15.0, 15.0))
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.array(
        [[rng.uniform(0.7, 1.3), rng.uniform(-0.3, 0.3)], [0.0, 1.0]]
    )
    centre = np.array([width / 2, height / 2])
    affine = np.hstack([linear, (centre - linear @ centre)[:, None]]).astype(np.float32)
    grey = cv2.warpAffine(grey, affine, (width, height), borderValue=0.0)
    if amount > 0:
        side = max(height, width)
        sigma = side / 8
        dx = cv2.GaussianBlur(rng.uniform(-1, 1, grey.shape).astype(np.float32), (0, 0), sigma)
        dy = cv2.GaussianBlur(rng.uniform(-1, 1, grey.shape).astype(np.float32), (0, 0), sigma)
        scale = amount * side / max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
        ys, xs = np.indices(grey.shape, dtype=np.float32)
        grey = cv2.remap(grey, xs + dx * scale, ys + dy * scale, cv2.INTER_LINEAR)
    return grey


def _on_paper(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink (0-1, light on dark) -> dark ink on light paper with a little noise, 0-255."""
    paper = rng.uniform(170, 250)
    pen = rng.uniform(0, 70)
    grey = paper - (paper - pen) * np.clip(ink, 0.0, 1.0)
    grey = grey + rng.normal(0, rng.uniform(0, 6), ink.shape)
    paper_grey: np.ndarray = np.clip(grey, 0, 255).astype(np.float32)
    return paper_grey


def glyph(
    text: str, fonts: list[Path], rng: np.random.Generator, hand: bool, bundled: bool = True
) -> np.ndarray:
    """A letter or symbol in one of `fonts` (or Pillow's bundled font when `bundled`),
    30-120 px; `hand`: elastically warped and drawn again with a round pen of random width
    (hand-drawn-like)."""
    size = int(rng.integers(30, 120))
    canvas = Image.new("L", (size * (len(text) + 1), size * 2), 0)
    ImageDraw.Draw(canvas).text(
        (size // 2, size // 3),
        text,
        fill=255,
        font=_font(fonts, size, rng, bundled),
        stroke_width=int(rng.integers(0, max(1, size // 14) + 1)),
        stroke_fill=255,
    )
    ink = np.asarray(canvas, dtype=np.float32) / 255.0
    ink = _warp(ink, rng, rng.uniform(0.03, 0.08) if hand else 0.0)
    if hand:  # thin to a core, then a round pen: a stroke width unlike the font's
        core = cv2.erode(
            (ink > 0.5).astype(np.uint8),
            np.ones((3, 3), np.uint8),
            iterations=int(rng.integers(0, 3)),
        )
        pen = int(rng.integers(2, max(3, size // 8)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (pen, pen))
        ink = np.asarray(
            cv2.GaussianBlur(cv2.dilate(core, kernel).astype(np.float32), (0, 0), 0.8),
            dtype=np.float32,
        )
    return _on_paper(ink, rng)


def scribble(rng: np.random.Generator) -> np.ndarray:
    """2-4 random smooth strokes with sharp turns between them (no digit's shape)."""
    side = int(rng.integers(64, 160))
    canvas = np.zeros((side, side), np.uint8)
    pen = int(rng.integers(2, max(3, side // 12)))
    for _ in range(int(rng.integers(2, 5))):
        points = rng.uniform(0.1, 0.9, size=(int(rng.integers(3, 7)), 2)) * side
        cv2.polylines(canvas, [points.astype(np.int32)], False, 255, pen, cv2.LINE_AA)
    return _on_paper(canvas.astype(np.float32) / 255.0, rng)


def shape(rng: np.random.Generator) -> np.ndarray:
    """A geometric shape, 64-160 px, outlined or filled: a polygon (3-8 corners), a star, an
    arrow or a cross; no circle or lone bar (drawn like a 0 or a 1)."""
    side = int(rng.integers(64, 160))
    canvas = np.zeros((side, side), np.uint8)
    pen = int(rng.integers(2, max(3, side // 10)))
    centre = np.array([side / 2, side / 2]) + rng.uniform(-0.1, 0.1, 2) * side
    radius = side * rng.uniform(0.25, 0.42)
    kind = int(rng.integers(4))
    if kind in (0, 1):  # a polygon, or a star (inner and outer corners alternating)
        corners = int(rng.integers(3, 9)) if kind == 0 else int(rng.integers(4, 9))
        angles = rng.uniform(0, 2 * np.pi) + np.arange(corners * (1 + kind)) * np.pi / (
            corners if kind else corners / 2
        )
        radii = np.full(len(angles), radius)
        if kind == 1:
            radii[1::2] *= rng.uniform(0.3, 0.6)
        radii *= rng.uniform(0.8, 1.2, len(radii))
        points = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]
        if rng.random() < 0.5:
            cv2.fillPoly(canvas, [points.astype(np.int32)], 255, cv2.LINE_AA)
        else:
            cv2.polylines(canvas, [points.astype(np.int32)], True, 255, pen, cv2.LINE_AA)
    elif kind == 2:  # an arrow
        angle = rng.uniform(0, 2 * np.pi)
        offset = np.array([np.cos(angle), np.sin(angle)]) * radius
        start, end = (centre - offset).astype(int), (centre + offset).astype(int)
        cv2.arrowedLine(
            canvas,
            (int(start[0]), int(start[1])),
            (int(end[0]), int(end[1])),
            255,
            pen,
            cv2.LINE_AA,
            tipLength=rng.uniform(0.2, 0.45),
        )
    else:  # a cross: two to four bars through the centre
        for angle in rng.uniform(0, np.pi) + np.arange(int(rng.integers(2, 5))) * np.pi / 4:
            offset = np.array([np.cos(angle), np.sin(angle)]) * radius
            start, end = (centre - offset).astype(int), (centre + offset).astype(int)
            cv2.line(canvas, (int(start[0]), int(start[1])), (int(end[0]), int(end[1])), 255, pen)
    ink = _warp(canvas.astype(np.float32) / 255.0, rng, rng.uniform(0.0, 0.06))
    return _on_paper(ink, rng)


def texture(rng: np.random.Generator, kinds: tuple[str, ...]) -> np.ndarray:
    """One texture, 64-160 px: stripes, blobs, checkerboard (training); dots, grid, rings
    (held-out only)."""
    side = int(rng.integers(64, 160))
    ys, xs = np.indices((side, side)).astype(np.float64)
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 30)
        ink = 0.5 + 0.5 * np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
    elif kind == "blobs":
        field = cv2.GaussianBlur(rng.normal(size=(side, side)), (0, 0), rng.uniform(3, 8))
        ink = (field > np.percentile(field, rng.uniform(50, 85))).astype(np.float64)
    elif kind == "checkerboard":
        cell = int(rng.integers(6, 24))
        ink = (((ys // cell) + (xs // cell)) % 2 == 0).astype(np.float64)
    elif kind == "dots":
        period = rng.uniform(8, 24)
        ink = ((np.mod(xs, period) - period / 2) ** 2 + (np.mod(ys, period) - period / 2) ** 2) < (
            period * rng.uniform(0.15, 0.35)
        ) ** 2
        ink = ink.astype(np.float64)
    elif kind == "grid":
        period, width = rng.uniform(8, 28), rng.uniform(1.5, 4)
        ink = ((np.mod(xs, period) < width) | (np.mod(ys, period) < width)).astype(np.float64)
    else:  # rings
        cy, cx = rng.uniform(0, side, size=2)
        ink = 0.5 + 0.5 * np.sin(np.hypot(ys - cy, xs - cx) * 2 * np.pi / rng.uniform(6, 20))
    return _on_paper(ink, rng)


def noise(rng: np.random.Generator) -> np.ndarray:
    """Blank-ish paper: uniform noise, faint smooth noise, or sparse specks."""
    side = int(rng.integers(48, 160))
    kind = int(rng.integers(3))
    if kind == 0:
        return rng.uniform(0, 255, size=(side, side)).astype(np.float32)
    if kind == 1:
        field = cv2.GaussianBlur(rng.normal(size=(side, side)), (0, 0), rng.uniform(1, 6))
        return _on_paper(np.clip(field / (np.abs(field).max() + 1e-6), 0, 1) * 0.6, rng)
    specks = (rng.random((side, side)) < rng.uniform(0.002, 0.03)).astype(np.float32)
    return _on_paper(cv2.dilate(specks, np.ones((2, 2), np.uint8)), rng)


def digit_pair(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two (or three) MNIST digits side by side, touching or a little apart."""
    picks = rng.choice(len(digits), size=3 if rng.random() < 0.3 else 2)
    gap = int(rng.integers(-3, 4))
    parts = [np.pad(digits[i].astype(np.float32), ((2, 2), (max(gap, 0), 0))) for i in picks]
    row = np.concatenate(parts, axis=1)
    return _on_paper(row / 255.0, rng)


TRAIN_TEXTURES = ("stripes", "blobs", "checkerboard")
HELD_OUT_TEXTURES = ("stripes", "blobs", "checkerboard", "dots", "grid", "rings")


def families(
    split: str, digits: np.ndarray, rng: np.random.Generator
) -> dict[str, Callable[[], np.ndarray]]:
    """Family name -> a generator of one grey image (H, W) 0-255, dark on light, for
    `split` "train" or "held-out" (see the module docstring). `digits`: MNIST grids (N, 28,
    28) white on black for the pairs (the fit images in training, test images held out)."""
    textures: tuple[str, ...]
    if split == "train":
        fonts, glyphs, textures = _fonts(TRAIN_FONTS), TRAIN_GLYPHS, TRAIN_TEXTURES
    else:
        fonts, glyphs, textures = _fonts(HELD_OUT_FONTS), LETTERS + SYMBOLS, HELD_OUT_TEXTURES
    # Pillow's bundled font draws held-out letters; training uses it only on a machine without
    # the DejaVu fonts, so that no font is shared between the splits where both are installed.
    bundled = split != "train"
    letters = [c for c in glyphs if c.isalpha()]
    symbols = [c for c in glyphs if not c.isalpha()]
    made: dict[str, Callable[[], np.ndarray]] = {
        "printed letters": lambda: glyph(
            str(rng.choice(letters)), fonts, rng, hand=False, bundled=bundled
        ),
        "hand-drawn-like letters": lambda: glyph(
            str(rng.choice(letters)), fonts, rng, hand=True, bundled=bundled
        ),
        "symbols": lambda: glyph(
            str(rng.choice(symbols)),
            fonts,
            rng,
            hand=rng.random() < 0.5,
            bundled=bundled,
        ),
        "textures": lambda: texture(rng, textures),
        "two or three digits side by side": lambda: digit_pair(digits, rng),
        "blank-ish noise": lambda: noise(rng),
    }
    if split == "train":
        unicode = list(UNICODE_GLYPHS)
        made["scribbles"] = lambda: scribble(rng)
        made["shapes"] = lambda: shape(rng)
        made["other scripts and signs, printed"] = lambda: glyph(
            str(rng.choice(unicode)), fonts, rng, hand=False, bundled=False
        )
        made["other scripts and signs, hand-drawn-like"] = lambda: glyph(
            str(rng.choice(unicode)), fonts, rng, hand=True, bundled=False
        )
    return made


# Share of each family among the training outliers: letters and symbols weigh most (the
# hardest to tell from digits).
TRAIN_MIX = {
    "printed letters": 0.20,
    "hand-drawn-like letters": 0.22,
    "symbols": 0.16,
    "other scripts and signs, printed": 0.09,
    "other scripts and signs, hand-drawn-like": 0.09,
    "shapes": 0.06,
    "textures": 0.06,
    "blank-ish noise": 0.04,
    "scribbles": 0.08,
}
# Digit pairs are not trained on: the reading keeps the most prominent digit of a pair (and
# `several_digits` warns), so a pair's grid is usually one plain digit.


def training_outliers(digits: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` training outliers as the server reads them: (N, 28, 28) float32 0-255 grids
    (N <= count: an image the server would refuse as blank is dropped, it never reaches the
    network)."""
    from app.preprocessing.image import grey_to_mnist
    from app.preprocessing.image_decode import ImageInputError

    rng = np.random.default_rng(seed)
    makers = families("train", digits, rng)
    grids: list[np.ndarray] = []
    for name, share in TRAIN_MIX.items():
        for _ in range(round(share * count)):
            try:
                grids.append(grey_to_mnist(makers[name]()))
            except ImageInputError:
                continue
    return np.asarray(grids, dtype=np.float32).reshape(-1, 28, 28)
