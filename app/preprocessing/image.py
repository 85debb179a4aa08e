"""Images the MNIST way: shared by training (digit arrays) and serving (uploads, base64).

MNIST digits are white ink on black, 28x28, the digit scaled into a 20x20 box (aspect kept)
and placed so its centre of mass sits at the centre of the frame. A photo or a drawing from a
client rarely looks like that, so `to_mnist` performs the same normalisation, and the model
sees what it was trained on.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    from app.budget import RequestBudget

MNIST_SIDE = 28
MNIST_BOX = 20
# A pixel counts as ink when it is this bright after background removal (0-255 scale).
INK_THRESHOLD = 32.0


class ImageInputError(ValueError):
    """The bytes are not a usable image; the message says what to fix."""


class ImageTooLargeError(ImageInputError):
    """The image has more pixels than allowed (protects against decompression bombs)."""


# The formats the README documents. Every other decoder Pillow has (BMP, TIFF, TGA, PCX, SGI,
# ICO, JPEG 2000, EPS through Ghostscript, ...) is attack surface a digit does not need.
FORMATS = ("PNG", "JPEG")
# JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, nearly free) as long as
# the shorter side keeps at least this many pixels: to_mnist shrinks the digit to 20x20 anyway.
JPEG_DRAFT_SIDE = 512
# First bytes of formats people send by mistake, to name them in the refusal.
_OTHER_FORMATS = (
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF8", "GIF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"\x01\xda", "SGI"),
)


def _format_name(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _OTHER_FORMATS if data.startswith(magic)), None)


def decode_image(data: bytes, max_pixels: int, budget: RequestBudget | None = None) -> Image.Image:
    """Decode PNG or JPEG bytes into a PIL image of at most `max_pixels` decoded pixels.

    The size is read from the header before any pixel is decoded, so a small file that claims
    20000x20000 pixels costs nothing. A JPEG larger than needed is decoded at reduced size
    (1/2 to 1/8 a side, into grey when it is in colour), so a 5000x5000 JPEG costs what a
    625x625 one does; `max_pixels` applies to what is decoded. The decoded pixels are charged
    to the request's `budget` (PayloadTooLarge past its allowance; DeadlineExceeded or
    ClientDisconnected when its work should stop) before decoding. Other formats raise
    ImageInputError naming them.
    """
    if not data:
        raise ImageInputError("the image is empty (0 bytes); send a PNG or JPEG file")
    try:
        with warnings.catch_warnings():
            # PIL warns on large images; our own limit below is the one that decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if image.format == "JPEG" and min(width, height) >= 2 * JPEG_DRAFT_SIDE:
                image.draft("L" if image.mode == "RGB" else image.mode, (JPEG_DRAFT_SIDE,) * 2)
            decoded_width, decoded_height = image.size
            if decoded_width * decoded_height > max_pixels:
                raise ImageTooLargeError(
                    f"the image is {width}x{height} = {width * height} pixels, over the limit of "
                    f"{max_pixels}; scale it down (a digit needs no more than a few hundred "
                    "pixels a side)"
                )
            if budget is not None:
                budget.charge_pixels(decoded_width * decoded_height)
            image.load()
    except ImageInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"the image is too large to decode safely (over {max_pixels} pixels); scale it down"
        ) from exc
    except UnidentifiedImageError as exc:
        name = _format_name(data)
        what = f"{name} images are not accepted" if name else "the bytes are not a PNG or JPEG"
        raise ImageInputError(f"{what}; send a PNG or JPEG file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(
            "the image could not be decoded (corrupt, truncated or with oversized metadata); "
            "send a complete PNG or JPEG file"
        ) from exc
    return image


def _to_grey(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Drawings often come as ink on a transparent canvas: put them on white paper.
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32)


def to_mnist(image: Image.Image) -> np.ndarray:
    """Convert any image of one digit into a (28, 28) float32 array, 0-255, MNIST-style.

    Steps: grey; invert when the background (border median) is light; subtract the background
    and stretch the ink to 0-255; crop to the ink; scale the longest side to 20 px (aspect
    kept, antialiased); paste into 28x28 with the centre of mass at the centre.
    """
    grey = _to_grey(image)
    border = np.concatenate([grey[0, :], grey[-1, :], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if background > 127.5:
        grey = 255.0 - grey
        background = 255.0 - background
    ink = np.clip(grey - background, 0.0, None)
    peak = float(ink.max())
    if peak < INK_THRESHOLD:
        raise ImageInputError(
            "the image looks blank: no digit stands out from the background; send a picture "
            "of one dark digit on light paper, or a light digit on black"
        )
    ink *= 255.0 / peak
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    height, width = ink.shape
    scale = MNIST_BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    boxed = Image.fromarray(ink.astype(np.uint8)).resize(new_size, Image.Resampling.LANCZOS)
    digit = np.asarray(boxed, dtype=np.float32)

    total = float(digit.sum())
    ys, xs = np.indices(digit.shape)
    centre_y = float((ys * digit).sum() / total) if total else digit.shape[0] / 2
    centre_x = float((xs * digit).sum() / total) if total else digit.shape[1] / 2
    top = round(MNIST_SIDE / 2 - centre_y)
    left = round(MNIST_SIDE / 2 - centre_x)
    # Keep the digit inside the frame even when its mass is far off-centre.
    top = min(max(top, 0), MNIST_SIDE - digit.shape[0])
    left = min(max(left, 0), MNIST_SIDE - digit.shape[1])
    canvas = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return canvas


def image_bytes_to_mnist(
    data: bytes, max_pixels: int, budget: RequestBudget | None = None
) -> np.ndarray:
    """Decode image bytes and convert them the MNIST way (see `to_mnist`)."""
    return to_mnist(decode_image(data, max_pixels, budget))


def images_to_model_input(images: npt.ArrayLike) -> np.ndarray:
    """Stack (28, 28) grey-level images into the (N, 28, 28, 1) float32 batch the CNN takes.

    Training calls this on the MNIST arrays and serving on request images, so both feed the
    network the same layout and scale (0-255; the model rescales inside its graph).
    """
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim != 3:
        raise ValueError(f"expected (N, height, width) images, got shape {batch.shape}")
    return batch[..., np.newaxis]
