"""MNIST-way conversion of uploaded images and decoding safeguards."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.preprocessing.image import (
    ImageInputError,
    ImageTooLargeError,
    decode_image,
    image_bytes_to_mnist,
    images_to_model_input,
    to_mnist,
)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _drawn_one(
    size: tuple[int, int] = (200, 300), ink: int = 0, paper: int = 255, offset: int = 0
) -> Image.Image:
    """A thick vertical stroke (a "1"), dark on light by default, off-centre."""
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    draw.rectangle([60 + offset, 40, 80 + offset, 260], fill=ink)
    return image


def test_dark_ink_on_paper_becomes_white_on_black_in_a_20px_box_centred_by_mass() -> None:
    digit = to_mnist(_drawn_one(offset=70))
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert digit.max() == pytest.approx(255, abs=1) and digit[0, 0] == 0
    rows = np.flatnonzero(digit.max(axis=1) > 32)
    assert rows[-1] - rows[0] + 1 == 20  # the tall side fills the 20 px box
    ys, xs = np.indices(digit.shape)
    centre = ((ys * digit).sum() / digit.sum(), (xs * digit).sum() / digit.sum())
    assert centre == pytest.approx((14, 14), abs=1.0)


def test_light_ink_on_black_is_not_inverted() -> None:
    assert np.array_equal(
        to_mnist(_drawn_one(ink=255, paper=0)), to_mnist(_drawn_one(ink=0, paper=255))
    )


def test_transparent_canvas_and_colour_images_work() -> None:
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse([20, 10, 80, 90], outline=(10, 10, 200, 255), width=12)
    digit = image_bytes_to_mnist(_png(rgba), max_pixels=1_000_000)
    assert digit.max() > 200 and digit[14, 14] < 50  # a ring: ink around, hole in the middle


def test_a_blank_image_is_refused() -> None:
    with pytest.raises(ImageInputError, match="blank"):
        to_mnist(Image.new("L", (50, 50), 255))


def test_pixel_limit_is_checked_before_decoding() -> None:
    big = _png(Image.new("L", (2000, 2000), 255))
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        decode_image(big, max_pixels=1_000_000)


@pytest.mark.parametrize("data", [b"", b"not an image at all", _png(_drawn_one())[:200]])
def test_undecodable_bytes_are_refused_with_a_clear_message(data: bytes) -> None:
    with pytest.raises(ImageInputError) as excinfo:
        decode_image(data, max_pixels=10_000_000)
    assert "PNG or JPEG" in str(excinfo.value)


def test_model_input_layout() -> None:
    batch = images_to_model_input([np.zeros((28, 28)), np.ones((28, 28))])
    assert batch.shape == (2, 28, 28, 1) and batch.dtype == np.float32
    with pytest.raises(ValueError):
        images_to_model_input(np.zeros((28, 28)))
