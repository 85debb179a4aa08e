"""Image files read as they are, for models that take pixel values in their own scale (a
user's image model, `app.kinds.raw_image`): exact size, no MNIST reading (no inversion,
cropping, centring or grey conversion of a colour image)."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.preprocessing.image_decode import FORMATS, ImageInputError, ImageTooLargeError

if TYPE_CHECKING:
    from app.budget import RequestBudget

# Pillow modes that a model's channel count reads the file in.
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def read_pixels(
    data: bytes,
    height: int,
    width: int,
    channels: int,
    max_pixels: int,
    budget: RequestBudget | None = None,
) -> np.ndarray:
    """PNG or JPEG bytes -> float32 `(height, width, channels)` values 0-255.

    The file must be exactly `width` x `height` pixels (read from its header, before any
    pixel is decoded): a model's input size is fixed, and resizing a photo behind the
    client's back would answer for a picture they did not send. Colour is converted to the
    model's channels by Pillow (RGB to grey by ITU-R 601 luma). Raises ImageInputError
    (what to fix) or ImageTooLargeError (over `max_pixels`).
    """
    mode = _MODES.get(channels)
    if mode is None:
        raise ImageInputError(
            f"the model takes {channels} channels, which no PNG/JPEG mode holds; send the "
            "pixel values as nested lists instead"
        )
    if not data:
        raise ImageInputError("the image is empty (0 bytes); send a PNG or JPEG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            got_width, got_height = image.size
            if got_width * got_height > max_pixels:
                raise ImageTooLargeError(
                    f"the image is {got_width}x{got_height} pixels, over the limit of "
                    f"{max_pixels}; the model takes {width}x{height}"
                )
            if (got_width, got_height) != (width, height):
                raise ImageInputError(
                    f"the image is {got_width}x{got_height} pixels (width x height); the model "
                    f"takes exactly {width}x{height}: resize it before sending"
                )
            if budget is not None:
                budget.charge_pixels(got_width * got_height)
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            if upright.size != (width, height):  # an EXIF rotation turned it on its side
                raise ImageInputError(
                    f"the image, turned upright by its EXIF orientation, is "
                    f"{upright.width}x{upright.height} pixels; the model takes exactly "
                    f"{width}x{height}"
                )
            values = np.asarray(upright.convert(mode), dtype=np.float32)
    except ImageInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError("the image is too large to decode safely") from exc
    except UnidentifiedImageError as exc:
        raise ImageInputError("the bytes are not a PNG or JPEG; send a PNG or JPEG file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(
            "the image could not be decoded (corrupt or truncated); send a complete PNG or JPEG"
        ) from exc
    return values.reshape(height, width, channels)


def to_png(values: np.ndarray, low: float, high: float, side: int = 112) -> bytes:
    """`(H, W)` or `(H, W, C)` values in `low..high` -> PNG bytes about `side` pixels a side
    (square blocks), for the report page."""
    span = high - low if high > low else 1.0
    levels = np.clip((np.asarray(values, dtype=np.float64) - low) * (255.0 / span), 0, 255)
    levels = levels.astype(np.uint8)
    if levels.ndim == 3 and levels.shape[-1] == 1:
        levels = levels[..., 0]
    if levels.ndim == 3 and levels.shape[-1] not in (3, 4):
        levels = levels.mean(axis=-1).astype(np.uint8)
    image = Image.fromarray(levels)
    block = max(1, side // max(image.width, image.height))
    image = image.resize((image.width * block, image.height * block), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
