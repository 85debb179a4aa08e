"""Image files in, grey levels out: PNG and JPEG decoding bounded by pixels (decompression
bombs, reduced-size JPEG decoding, the request's budget) and the grey reading of any mode."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    from app.budget import RequestBudget


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
    """Grey levels 0-255 (float32) by what the pixels mean, whatever the mode.

    Pillow's `convert("L")` clips 16- and 32-bit values instead of scaling them (a 16-bit
    photo of paper becomes all white) and drops alpha without looking at it. So: 16-bit grey
    is scaled by 65535/255; 32-bit integer grey likewise when it exceeds 8 bits; float grey
    is read as 0-1 when it stays within [0, 1]; palettes, CMYK, YCbCr and the rest go through
    RGB (ITU-R 601 luma); transparency is flattened onto a canvas that contrasts with the
    opaque strokes (white for dark ink, black for light ink), so a digit drawn in white on a
    transparent canvas stays visible.
    """
    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / np.float32(257.0)
    if mode == "I":
        values = np.asarray(image, dtype=np.float64)
        high = float(values.max(initial=0.0))
        if high > 65535.0:
            values = values * (255.0 / high)
        elif high > 255.0:
            values = values / 257.0
        return np.clip(values, 0.0, 255.0).astype(np.float32)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
        low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
        if low >= 0.0 and high <= 1.0:
            values = values * np.float32(255.0)
        elif high > 255.0 or low < 0.0:
            values = (values - low) * np.float32(255.0 / max(high - low, 1e-12))
        return np.clip(values, 0.0, 255.0).astype(np.float32)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / np.float32(255.0)
        grey = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float32)
        if float(alpha.min()) >= 1.0:
            return grey
        weight = float(alpha.sum())
        strokes = float((grey * alpha).sum() / weight) if weight else 0.0
        canvas = 0.0 if strokes > 127.5 else 255.0
        flattened: np.ndarray = grey * alpha + np.float32(canvas) * (1.0 - alpha)
        return flattened
    if mode not in ("L", "RGB", "1"):
        image = image.convert("RGB")
    return np.asarray(image.convert("L"), dtype=np.float32)
