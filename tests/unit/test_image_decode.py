"""Decoding costs what the job needs (issue 13): formats, reduced-size JPEG decoding, budgets."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from app.budget import ClientDisconnected, RequestBudget
from app.errors import DeadlineExceeded, PayloadTooLarge
from app.preprocessing.image_decode import ImageInputError, ImageTooLargeError, decode_image


def _saved(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def claims_5000x5000() -> bytes:
    """A few hundred bytes of JPEG whose header says 5000x5000 (the data is for 8x8)."""
    data = bytearray(_saved(Image.new("L", (8, 8), 0), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = (5000).to_bytes(2, "big") * 2
    return bytes(data)


OTHER_FORMATS = ["BMP", "TIFF", "TGA", "PCX", "SGI", "ICO", "JPEG2000", "EPS", "GIF", "WEBP"]


@pytest.mark.parametrize("format", OTHER_FORMATS)
def test_only_png_and_jpeg_are_decoded(format: str) -> None:
    data = _saved(Image.new("RGB", (32, 32), (255, 255, 255)), format)
    with pytest.raises(ImageInputError, match="send a PNG or JPEG file") as excinfo:
        decode_image(data, 10**6)
    assert "could not be decoded" not in str(excinfo.value)  # refused, not tried
    if format in ("BMP", "TIFF", "GIF", "EPS"):
        assert f"{format} images are not accepted" in str(excinfo.value)


def test_a_large_jpeg_is_decoded_at_reduced_size_in_grey() -> None:
    photo = _saved(Image.new("RGB", (4096, 3072), (250, 240, 230)), "JPEG", quality=30)
    image = decode_image(photo, 4_000_000)
    # 1/4 a side keeps the shorter side at >= 512 px; grey straight from the decoder.
    assert image.size == (1024, 768) and image.mode == "L"


def test_the_pixel_limit_applies_to_what_is_decoded() -> None:
    photo = _saved(Image.new("L", (4096, 4096), 200), "JPEG", quality=30)
    assert decode_image(photo, 300_000).size == (512, 512)
    png = _saved(Image.new("L", (1000, 1000), 200), "PNG")
    with pytest.raises(ImageTooLargeError, match="1000x1000"):
        decode_image(png, 300_000)


def test_a_tiny_jpeg_claiming_5000x5000_decodes_at_an_eighth_or_fails_fast() -> None:
    budget = RequestBudget(max_pixels=10**7)
    try:
        image = decode_image(claims_5000x5000(), 4_000_000, budget)
    except ImageInputError:
        pass  # truncated data: refused
    else:
        assert image.size == (625, 625)
    assert budget.pixels == 625 * 625


def test_decoded_pixels_are_charged_to_the_request() -> None:
    png = _saved(Image.new("L", (100, 100), 200), "PNG")
    budget = RequestBudget(max_pixels=25_000)
    decode_image(png, 10**6, budget)
    decode_image(png, 10**6, budget)
    with pytest.raises(PayloadTooLarge, match="30000 decoded pixels so far, over the limit of"):
        decode_image(png, 10**6, budget)


def test_a_stopped_or_late_request_decodes_nothing_more() -> None:
    png = _saved(Image.new("L", (10, 10), 200), "PNG")
    budget = RequestBudget()
    budget.stop(ClientDisconnected("gone"))
    with pytest.raises(ClientDisconnected):
        decode_image(png, 10**6, budget)
    with pytest.raises(DeadlineExceeded):
        decode_image(png, 10**6, RequestBudget(deadline=-math.inf))
