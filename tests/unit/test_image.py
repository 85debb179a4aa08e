"""MNIST-way conversion of uploaded images and decoding safeguards."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.preprocessing.image import image_bytes_to_mnist, images_to_model_input, to_mnist
from app.preprocessing.image_decode import ImageInputError, ImageTooLargeError, decode_image
from app.preprocessing.image_grids import grid_to_mnist_scale


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


# ---------------------------------------------------------------- photos and image modes
def _paper_with_digit(
    *, low: float = 170, high: float = 230, size: tuple[int, int] = (2000, 1500), noise: float = 4
) -> np.ndarray:
    """A dark "7"-like shape (bar + slanted stroke) on paper lit from grey `low` to `high`."""
    width, height = size
    paper = np.tile(np.linspace(low, high, width, dtype=np.float32), (height, 1))
    paper += np.random.default_rng(0).normal(0, noise, paper.shape).astype(np.float32)
    image = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.line([(1300, 900), (1420, 900), (1340, 1180)], fill=40, width=22)
    return np.asarray(image, dtype=np.float32)


def _reference_seven() -> np.ndarray:
    image = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(image).line([(140, 60), (260, 60), (180, 340)], fill=0, width=22)
    return to_mnist(image)


def test_uneven_lighting_is_not_taken_for_ink() -> None:
    # The example: paper from grey 170 to 230 across a 2000x1500 frame, a small digit
    # off-centre. The global background estimate took the darker half of the page as ink.
    digit = to_mnist(Image.fromarray(_paper_with_digit().astype(np.uint8)))
    assert np.abs(digit - _reference_seven()).mean() < 15
    ys, xs = np.indices(digit.shape)
    assert ((ys * digit).sum() / digit.sum(), (xs * digit).sum() / digit.sum()) == pytest.approx(
        (14, 14), abs=1.0
    )


def test_specks_and_a_dark_table_edge_are_ignored() -> None:
    grey = _paper_with_digit(low=200, high=200)
    grey[:, :120] = 30  # the table beside the sheet, cut by the frame
    grey[200:206, 400:406] = 20  # a speck of dirt
    grey[1400:1404, 300:303] = 20
    digit = to_mnist(Image.fromarray(grey.astype(np.uint8)))
    assert np.abs(digit - _reference_seven()).mean() < 15


def _sixteen_bit(grey: np.ndarray) -> Image.Image:
    image = Image.fromarray(np.rint(grey * 257).astype(np.uint16))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_a_16_bit_png_is_scaled_not_clipped() -> None:
    canvas = Image.fromarray(np.full((450, 600), 215, np.uint8))
    ImageDraw.Draw(canvas).line([(240, 60), (360, 60), (280, 340)], fill=40, width=22)
    eight_bit = np.asarray(canvas, dtype=np.float32)
    sixteen = _sixteen_bit(eight_bit)
    assert sixteen.mode.startswith("I")
    np.testing.assert_allclose(to_mnist(sixteen), to_mnist(canvas), atol=1.0)


def _dark_seven_rgba(ink: tuple[int, int, int, int]) -> Image.Image:
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(100, 40), (200, 40), (130, 260)], fill=ink, width=18)
    return image


@pytest.mark.parametrize(
    "convert",
    [
        lambda im: im.convert("L"),
        lambda im: im.convert("RGB"),
        lambda im: im.convert("P", palette=Image.Palette.ADAPTIVE),
        lambda im: im.convert("CMYK"),
        lambda im: im.convert("1"),
        lambda im: im.convert("I"),
        lambda im: Image.fromarray(np.asarray(im.convert("L"), np.float32) / 255.0, mode="F"),
        lambda im: im.convert("LA"),
        lambda im: im.convert("YCbCr"),
    ],
    ids=["L", "RGB", "P", "CMYK", "1", "I", "F 0-1", "LA", "YCbCr"],
)
def test_every_mode_gives_the_same_digit(convert: Any) -> None:
    canvas = Image.new("L", (300, 300), 230)
    ImageDraw.Draw(canvas).line([(100, 40), (200, 40), (130, 260)], fill=20, width=18)
    reference = to_mnist(canvas)
    assert np.abs(to_mnist(convert(canvas.convert("RGB"))) - reference).mean() < 6


@pytest.mark.parametrize("ink", [(255, 255, 255, 255), (0, 0, 0, 255), (20, 40, 200, 255)])
def test_strokes_on_a_transparent_canvas_are_read_whatever_their_colour(
    ink: tuple[int, int, int, int],
) -> None:
    # White strokes on a transparent canvas were flattened onto white paper: blank.
    digit = image_bytes_to_mnist(_png(_dark_seven_rgba(ink)), max_pixels=10**6)
    reference = to_mnist(_dark_seven_rgba((0, 0, 0, 255)).convert("LA"))
    assert np.abs(digit - reference).mean() < 6


def test_photo_like_generator_digits_come_out_centred_and_clear() -> None:
    from training.photo_like import photo_like

    rng = np.random.default_rng(3)
    seven = _reference_seven()
    for _ in range(3):
        photo = photo_like(seven, rng)
        digit = image_bytes_to_mnist(photo.data, max_pixels=10**8)
        # Rotation, blur and JPEG change details; the digit stays a 7 in the same place.
        assert np.abs(digit - to_mnist(Image.fromarray(seven.astype(np.uint8)))).mean() < 25


@pytest.mark.parametrize(
    ("grid", "expected_peak"),
    [(np.eye(28) * 255, 255), (np.eye(28), 255), (np.eye(28) * 0.5, 127.5), (np.eye(28) * 2, None)],
    ids=["0-255", "0-1", "0-1 half", "0-255 faint"],
)
def test_grids_in_0_1_are_scaled_and_blank_ones_refused(
    grid: np.ndarray, expected_peak: float | None
) -> None:
    if expected_peak is None:
        with pytest.raises(ImageInputError, match="blank"):
            grid_to_mnist_scale(grid.astype(np.float32))
    else:
        assert grid_to_mnist_scale(grid.astype(np.float32)).max() == pytest.approx(expected_peak)
    for blank in (np.zeros((28, 28)), np.ones((28, 28)), np.full((28, 28), 200.0)):
        with pytest.raises(ImageInputError, match="blank"):
            grid_to_mnist_scale(blank.astype(np.float32))


def test_a_28x28_mnist_grid_as_an_image_is_used_as_is_in_either_polarity() -> None:
    grid = np.zeros((28, 28), np.float32)
    grid[6:22, 12:15] = 255.0
    grid[6:9, 9:18] = 180.0
    for image in (
        Image.fromarray(grid.astype(np.uint8)),
        Image.fromarray((255 - grid).astype(np.uint8)),
    ):
        np.testing.assert_array_equal(to_mnist(image), grid)
    # Ink at the edge: not an MNIST grid, so it is converted in full.
    off = np.roll(grid, 13, axis=1)
    assert not np.array_equal(to_mnist(Image.fromarray(off.astype(np.uint8))), off)


def _mnist_digits(count: int = 40) -> tuple[np.ndarray, np.ndarray]:
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist.npz"
    if not path.exists():
        pytest.skip("MNIST data not found")
    with np.load(path) as data:
        return data["x_test"][:count].astype(np.float32), data["y_test"][:count]


def test_a_black_on_white_grid_is_read_like_the_same_pixels_as_a_png() -> None:
    from app.preprocessing.image_grids import read_grid

    digits, _ = _mnist_digits(20)
    for digit in digits:
        inverted = 255.0 - digit
        png = io.BytesIO()
        Image.fromarray(inverted.astype(np.uint8)).save(png, format="PNG")
        from_file = image_bytes_to_mnist(png.getvalue(), max_pixels=10**6)
        np.testing.assert_allclose(read_grid(inverted), from_file, atol=1e-3)
        # The plain MNIST grid itself is used as is.
        np.testing.assert_array_equal(read_grid(digit), digit)


def test_a_thumbnail_cropped_tight_is_read_not_refused() -> None:
    import cv2

    from app.preprocessing.image import grey_to_mnist

    digits, _ = _mnist_digits(40)
    reference = [grey_to_mnist(d) for d in digits]
    close = 0
    for digit, expected in zip(digits, reference, strict=True):
        rows = np.flatnonzero(digit.max(axis=1) > 30)
        cols = np.flatnonzero(digit.max(axis=0) > 30)
        crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        small = cv2.resize(crop, (8, 8), interpolation=cv2.INTER_AREA)
        thumbnail = 255.0 - cv2.resize(small, (32, 32), interpolation=cv2.INTER_NEAREST)
        read = grey_to_mnist(np.clip(thumbnail, 0, 255))
        close += float(np.abs(read - expected).mean()) < 40
    assert close >= 30  # a blocky 8 px source keeps the digit's shape, not its detail


def test_ink_under_a_hard_shadow_keeps_its_strength() -> None:
    paper = np.full((200, 200), 230.0, np.float32)
    paper[:, 100:] *= 0.4  # a hard shadow edge down the middle
    digit = paper.copy()
    digit[40:160, 60:70] *= 0.2  # one stroke in the light
    digit[40:160, 130:140] *= 0.2  # one in the shade
    from app.preprocessing.image import _ink_map

    ink = _ink_map(digit)
    light, shade = ink[100, 60:70].mean(), ink[100, 130:140].mean()
    assert shade == pytest.approx(light, rel=0.15)


def test_a_hard_shadow_over_most_of_the_frame_does_not_flip_the_polarity() -> None:
    # Issue 23: "a 4 with a hard shadow edge reads as 1". With the shade over 70% of the
    # sheet, the global median is the shaded paper and the lit paper outreaches the ink from
    # it: the old rule took the lit paper for light ink and read the shadow's wedge.
    from app.preprocessing.image import _dark_ink, grey_to_mnist

    image = Image.new("L", (200, 200), 225)
    ImageDraw.Draw(image).line([(80, 40), (120, 40), (90, 160)], fill=30, width=10)
    grey = np.asarray(image, dtype=np.float32).copy()
    ys, xs = np.indices(grey.shape)
    grey[xs + 0.3 * ys < 150] *= 0.45  # a straight, slanted shadow edge; the shade wins
    assert float(np.median(grey)) < 120  # the median is the shaded paper
    assert _dark_ink(grey, grey) and not _dark_ink(255.0 - grey, 255.0 - grey)
    plain = np.asarray(image, dtype=np.float32)
    assert np.abs(grey_to_mnist(grey) - grey_to_mnist(plain)).mean() < 5  # the old rule: 13


def test_several_digits_side_by_side_are_counted_and_one_digit_is_not() -> None:
    from app.preprocessing.image import read_grey

    digits, _ = _mnist_digits(6)
    for first, second in ((0, 1), (4, 5), (5, 4)):
        pair = np.concatenate([np.pad(digits[first], 4), np.pad(digits[second], 4)], axis=1)
        assert read_grey(255.0 - pair)[1] >= 1
        single = np.pad(digits[first], 12)
        assert read_grey(255.0 - single)[1] == 0


def test_a_batch_of_grids_is_read_as_each_grid_alone() -> None:
    from app.preprocessing.image_grids import read_grid, read_grids

    rng = np.random.default_rng(7)
    digit = np.zeros((28, 28), np.float32)
    digit[6:22, 12:16] = 255.0  # a plain MNIST-style "1", used as is
    on_the_edge = digit.copy()
    on_the_edge[0, 5] = 200.0  # ink in the outer ring: boxed and centred
    filled = np.full((28, 28), 90.0, np.float32)
    filled[10:18, 10:18] = 250.0  # over half the pixels inked
    grids = [
        digit,
        255.0 - digit,  # black on white
        digit / 255.0,  # 0-1 scaled
        on_the_edge,
        np.roll(digit, 9, axis=1),  # off-centre but clear of the ring: used as is
        filled,
        np.clip(digit + rng.integers(0, 20, (28, 28)), 0, 255).astype(np.float32),  # noisy
    ]
    rows = read_grids(np.stack(grids))
    assert len(rows) == len(grids)
    for grid, row in zip(grids, rows, strict=True):
        np.testing.assert_array_equal(row, read_grid(grid))
    small = np.zeros((2, 5, 6), np.float32)
    small[:, 1:4, 2:4] = 200.0  # not 28x28: never "plain", always read
    for grid, row in zip(small, read_grids(small), strict=True):
        np.testing.assert_array_equal(row, read_grid(grid))
    blank = np.stack([digit, np.full((28, 28), 7.0, np.float32)])
    with pytest.raises(ImageInputError):
        read_grids(blank)
