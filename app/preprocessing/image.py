"""Images the MNIST way: shared by training (digit arrays) and serving (uploads, base64).

MNIST digits are white ink on black, 28x28, the digit scaled into a 20x20 box (aspect kept)
and placed so its centre of mass sits at the centre of the frame. A photo or a drawing from a
client rarely looks like that, so `to_mnist` performs the same normalisation, and the model
sees what it was trained on.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

MNIST_SIDE = 28
MNIST_BOX = 20
# A pixel counts as ink when it is this bright after background removal (0-255 scale).
INK_THRESHOLD = 32.0


class ImageInputError(ValueError):
    """The bytes are not a usable image; the message says what to fix."""


class ImageTooLargeError(ImageInputError):
    """The image has more pixels than allowed (protects against decompression bombs)."""


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode PNG/JPEG/... bytes into a PIL image, refusing images over `max_pixels`.

    The size is read from the header before any pixel is decoded, so a small file that
    claims 20000x20000 pixels costs nothing.
    """
    if not data:
        raise ImageInputError("the image is empty (0 bytes); send a PNG or JPEG file")
    try:
        with warnings.catch_warnings():
            # PIL warns on large images; our own limit below is the one that decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"the image is {width}x{height} = {width * height} pixels, over the limit of "
                    f"{max_pixels}; scale it down (a digit needs no more than a few hundred "
                    "pixels a side)"
                )
            image.load()
    except ImageInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"the image is too large to decode safely (over {max_pixels} pixels); scale it down"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageInputError(
            "the bytes are not an image format the server knows; send a PNG or JPEG file"
        ) from exc
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


def image_bytes_to_mnist(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode image bytes and convert them the MNIST way (see `to_mnist`)."""
    return to_mnist(decode_image(data, max_pixels))


def images_to_model_input(images: npt.ArrayLike) -> np.ndarray:
    """Stack (28, 28) grey-level images into the (N, 28, 28, 1) float32 batch the CNN takes.

    Training calls this on the MNIST arrays and serving on request images, so both feed the
    network the same layout and scale (0-255; the model rescales inside its graph).
    """
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim != 3:
        raise ValueError(f"expected (N, height, width) images, got shape {batch.shape}")
    return batch[..., np.newaxis]
