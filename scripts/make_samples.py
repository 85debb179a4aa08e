"""Write the README's sample inputs into samples/ (deterministic: run it again, same files).

- digit-photo.jpg: a held-out MNIST "3" printed dark on light, slightly uneven paper, off
  centre in a 640x480 frame, with sensor noise and JPEG compression: what a phone gives.
- digit-drawing.png: a "4" drawn with three strokes on a transparent canvas, as a drawing
  app or an HTML canvas exports it.
- review.txt: a short film review in English.

Usage: python scripts/make_samples.py [--data-dir ../shared/data] [--out samples]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REVIEW = (
    "A moving, beautifully acted film. The two leads carry every scene, the script never "
    "talks down to its audience, and the last twenty minutes are as tense as anything I "
    "have seen this year. I would happily watch it again.\n"
)


def digit_photo(data_dir: Path) -> bytes:
    with np.load(data_dir / "mnist.npz") as mnist:
        digit = mnist["x_test"][np.flatnonzero(mnist["y_test"] == 3)[1]]
    rng = np.random.default_rng(3)
    width, height = 640, 480
    # Paper lit from the left: a little brighter on one side, never flat.
    paper = np.linspace(190.0, 228.0, width)[np.newaxis, :].repeat(height, axis=0)
    ink = np.asarray(Image.fromarray(digit).resize((180, 180), Image.Resampling.BICUBIC))
    top, left = 120, 330
    page = paper.copy()
    region = page[top : top + 180, left : left + 180]
    page[top : top + 180, left : left + 180] = region - (region - 40.0) * (ink / 255.0)
    page += rng.normal(0.0, 4.0, page.shape)
    grey = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    photo = Image.merge(
        "RGB", (grey, grey.point(lambda v: v * 0.98), grey.point(lambda v: v * 0.93))
    )
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def digit_drawing() -> bytes:
    canvas = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    pen = ImageDraw.Draw(canvas)
    stroke = {"fill": (20, 20, 20, 255), "width": 14}
    pen.line([(120, 25), (45, 125), (160, 125)], **stroke, joint="curve")
    pen.line([(125, 70), (125, 180)], **stroke)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("samples"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "digit-photo.jpg").write_bytes(digit_photo(args.data_dir))
    (args.out / "digit-drawing.png").write_bytes(digit_drawing())
    (args.out / "review.txt").write_text(REVIEW)
    for path in sorted(args.out.iterdir()):
        print(f"{path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
