"""Images the MNIST way: shared by training (digit arrays) and serving (uploads, base64).

MNIST digits are white ink on black, 28x28, the digit scaled into a 20x20 box (aspect kept)
and placed so its centre of mass sits at the centre of the frame. A photo or a drawing from a
client rarely looks like that, so `to_mnist` performs the same normalisation, and the model
sees what it was trained on. Decoding files is `image_decode`, reading clients' grids
`image_grids`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from app.preprocessing.image_decode import ImageInputError, _to_grey, decode_image

if TYPE_CHECKING:
    from app.budget import RequestBudget

MNIST_SIDE = 28
MNIST_BOX = 20
# A 28x28 image whose ink stays clear of this many edge pixels is taken for an MNIST grid (1%
# of the MNIST test digits reach into the outer ring; a digit drawn to the edge does).
MNIST_MARGIN = 1
# A pixel counts as ink when it is this bright after background removal (0-255 scale).
INK_THRESHOLD = 32.0
# The digit is searched for at most this many pixels a side (a phone photo is 4000): enough
# for a digit a tenth of the frame high to keep more detail than MNIST's 20 px.
WORK_SIDE = 640
# A smaller image (a thumbnail, a low-DPI scan, a 28x28 grid whose digit fills it) is first
# upscaled (bicubic) so its longer side has at least this many pixels: the smoothing, the
# minimum areas and the background window below are sized for strokes a few pixels wide.
MIN_WORK_SIDE = 112
# Lighting is estimated at most this many pixels a side, with an opening window this fraction
# of the short side (wider than any stroke of a digit that fills the frame).
BACKGROUND_SIDE = 160
BACKGROUND_WINDOW = 0.3
# Polarity (`_dark_ink`): the ink is the side of the median that reaches this many times
# further than the other; when neither does, the skew of the residual against a median
# filter this fraction of the short side wide decides. Chosen on generated digits from the
# training images (training/digit_families.py at seed 99), not the benches' draws.
POLARITY_RATIO = 3.0
POLARITY_WINDOW = 0.45
# Paper darker than this (a deep shadow) is not brightened further when ink is measured
# against it (noise would grow with it).
MIN_PAPER_LEVEL = 48.0
# Ink must stand this many noise deviations (median absolute deviation) above the paper, and
# at least this many grey levels.
NOISE_SIGMAS = 4.0
MIN_INK_LEVEL = 8.0
# Hysteresis: the rim of a stroke down to this fraction of the strong threshold is kept.
HYSTERESIS = 0.5
# Components: the digit has at least this many pixels and this fraction of the frame (at the
# working size); pieces within this many digit sizes of the digit, with at least this fraction
# of its ink, belong to it.
MIN_DIGIT_AREA = 12
MIN_DIGIT_FRACTION = 0.0002
PIECE_REACH = 0.3
PIECE_MIN_MASS = 0.03
# Another component counts as another digit beside the chosen one when it has this fraction
# of its ink and of its height and lies beside it (no shared column).
OTHER_DIGIT_MASS = 0.25
OTHER_DIGIT_HEIGHT = 0.6
# The strokes' core (this percentile of the digit's ink) becomes full white, 255.
CORE_PERCENTILE = 90.0
BLANK_MESSAGE = (
    "the image looks blank: no digit stands out from the background; send a picture "
    "of one dark digit on light paper, or a light digit on black"
)


def to_mnist(image: Image.Image) -> np.ndarray:
    """Convert any image of one digit into a (28, 28) float32 array, 0-255, MNIST-style.

    Raises ImageInputError when no digit stands out. See `grey_to_mnist` for the steps.
    """
    return grey_to_mnist(_to_grey(image))


def _odd(value: float) -> int:
    return max(3, int(value) | 1)


def _ink_map(grey: np.ndarray) -> np.ndarray:
    """Grey levels -> ink strength (0 = paper), light ink on dark, lighting removed.

    Polarity: `_dark_ink`, the side of the median that reaches furthest, or where that is
    not clear, the side to which the image departs from its local median (thin strokes on
    paper), so that a shadow over most of the sheet does not decide it.
    Lighting: a grey-level opening with a window wider than any stroke keeps the paper
    (gradients, vignettes, the flat parts of a shadow) and drops the strokes; subtracting it
    leaves the ink. The opening runs on a copy at most BACKGROUND_SIDE px a side: lighting
    varies slowly, so the low resolution costs nothing and keeps the window cheap.
    """
    height, width = grey.shape
    shrink = min(1.0, BACKGROUND_SIDE / max(height, width))
    size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if shrink < 1.0 else grey
    window = _odd(min(small.shape) * BACKGROUND_WINDOW)
    dark_ink = _dark_ink(grey, small)
    if dark_ink:
        grey = np.float32(255.0) - grey
        small = np.float32(255.0) - small
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (window, window))
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
    if shrink < 1.0:
        background = cv2.GaussianBlur(background, (0, 0), 1.0)
        background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    ink = np.clip(grey - background, 0.0, None)
    if dark_ink:
        # Dark ink on paper: light multiplies (a shadow darkens paper and ink alike), so the
        # ink is measured against the paper's own brightness there, not in grey levels: a
        # stroke in a hard-edged shadow is as strong as one in the light.
        paper = np.maximum(np.float32(255.0) - background, np.float32(MIN_PAPER_LEVEL))
        ink = ink * (np.float32(255.0) / paper)
    return ink


def _dark_ink(grey: np.ndarray, small: np.ndarray) -> bool:
    """Whether the ink is darker than the paper, from the grey levels `grey` and their
    lighting-sized copy `small`.

    First the side of the median that reaches furthest (a few strokes on a sheet of paper),
    on a median-filtered copy so sensor noise does not vote, when one side reaches at least
    POLARITY_RATIO times as far as the other. Otherwise the lighting may be deciding it: under
    a hard shadow over most of the frame the median is the shaded paper, and the lit paper
    reaches as far from it as the ink (issue 23: "a 4 with a hard shadow edge reads as 1").
    Then the residual against a median filter POLARITY_WINDOW of the short side wide decides:
    strokes cover a minority of such a window, so its median is the paper's level whatever
    the lighting (a median keeps a shadow's straight edge), and the residual is skewed
    towards the ink: the sign of its third moment is the polarity."""
    smooth = cv2.medianBlur(grey, 3) if min(grey.shape) >= 3 else grey
    median = float(np.median(smooth))
    below, above = median - float(smooth.min()), float(smooth.max()) - median
    if max(below, above) >= POLARITY_RATIO * min(below, above):
        return below > above
    levels = np.clip(np.rint(small), 0.0, 255.0).astype(np.uint8)
    window = _odd(min(small.shape) * POLARITY_WINDOW)
    residual = small.astype(np.float64) - cv2.medianBlur(levels, window).astype(np.float64)
    return float(np.mean(residual**3)) < 0.0


def _digit_mask(ink: np.ndarray) -> tuple[np.ndarray, int]:
    """The pixels of the digit: hysteresis thresholding, then the connected components that
    make up one digit (the strongest one plus the pieces close to it; specks, the paper's
    edges and shadows' rims are dropped). Raises ImageInputError when nothing stands out."""
    blurred = cv2.GaussianBlur(ink, (0, 0), 1.0) if min(ink.shape) >= 8 else ink
    level = float(np.median(blurred))
    spread = 1.4826 * float(np.median(np.abs(blurred - level)))
    peak = float(blurred.max())
    if level + NOISE_SIGMAS * spread > 0.5 * peak:
        # The median is ink, not paper: the digit covers most of the frame (a thumbnail
        # cropped tight). The paper's level and noise then come from its darker quantiles
        # (10th and 25th percentiles: 1.28 and 0.67 deviations below a normal's median).
        p10, p25 = (float(v) for v in np.percentile(blurred, (10.0, 25.0)))
        spread = (p25 - p10) / 0.6064
        level = p25 + 0.6745 * spread
    floor = max(level + NOISE_SIGMAS * spread, MIN_INK_LEVEL)
    if peak - level < INK_THRESHOLD:
        raise ImageInputError(BLANK_MESSAGE)
    scaled = np.clip(blurred * (255.0 / peak), 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    high = max(float(otsu) * peak / 255.0, floor)
    strong = (blurred > high).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    if count <= 1:
        raise ImageInputError(BLANK_MESSAGE)
    height, width = ink.shape
    boxes = stats[1:, :4].astype(np.float64)  # x, y, w, h per component
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    masses = np.bincount(labels.ravel(), weights=blurred.ravel(), minlength=count)[1:]
    touches = (
        (boxes[:, 0] == 0)
        | (boxes[:, 1] == 0)
        | (boxes[:, 0] + boxes[:, 2] >= width)
        | (boxes[:, 1] + boxes[:, 3] >= height)
    )
    # Something cut by the frame is more likely a table, the sheet's edge or a shadow's rim
    # than the digit: the digit is the strongest component clear of the frame, unless there
    # is none of a size to be one (a digit cropped tight); specks lose on ink mass.
    clear = ~touches & (areas >= max(MIN_DIGIT_AREA, MIN_DIGIT_FRACTION * height * width))
    score = np.where(clear, masses, 0.0) if clear.any() else masses
    main = int(np.argmax(score))
    if float(blurred[labels == main + 1].max()) - level < INK_THRESHOLD:
        raise ImageInputError(BLANK_MESSAGE)
    chosen = {main}
    left, top = boxes[main, 0], boxes[main, 1]
    right, bottom = left + boxes[main, 2], top + boxes[main, 3]
    for _ in range(3):  # pieces may chain: a "5" whose bar is near the bowl, a dot beyond it
        reach = PIECE_REACH * max(right - left, bottom - top)
        grew = False
        for index in np.argsort(-score):
            index = int(index)
            if index in chosen or masses[index] < PIECE_MIN_MASS * masses[main]:
                continue
            x, y, w, h = boxes[index]
            gap_x = max(left - (x + w), x - right, 0.0)
            gap_y = max(top - (y + h), y - bottom, 0.0)
            if max(gap_x, gap_y) <= reach and (not touches[index] or touches[main]):
                chosen.add(index)
                left, top = min(left, x), min(top, y)
                right, bottom = max(right, x + w), max(bottom, y + h)
                grew = True
        if not grew:
            break
    selected = np.isin(labels, [index + 1 for index in chosen])
    # Hysteresis: keep the fainter rim of the chosen strokes (anti-aliasing, thin joins),
    # never faint pixels that are not attached to them.
    weak = (blurred > max(high * HYSTERESIS, floor)).astype(np.uint8)
    _, weak_labels = cv2.connectedComponents(weak, connectivity=8)
    keep_labels = np.unique(weak_labels[selected])
    mask = np.isin(weak_labels, keep_labels[keep_labels > 0])
    # Other digits beside this one (a photo of "42"): components clear of the frame, of a
    # digit's height and ink, that do not overlap the digit's columns.
    main_height, main_left = boxes[main, 3], boxes[main, 0]
    main_right = main_left + boxes[main, 2]
    others = int(
        np.count_nonzero(
            clear
            & (masses >= OTHER_DIGIT_MASS * masses[main])
            & (boxes[:, 3] >= OTHER_DIGIT_HEIGHT * main_height)
            & ((boxes[:, 0] >= main_right) | (boxes[:, 0] + boxes[:, 2] <= main_left))
        )
    )
    return mask, others


def _already_mnist(grey: np.ndarray) -> np.ndarray | None:
    """A 28x28 image that is already an MNIST grid (its ink clear of the outer pixel ring),
    with its polarity and background level normalised; or
    None when it needs the full conversion. Converting such a grid again (crop, rescale to
    20 px, recentre) could only lose detail, and the grid sent as numbers is used as is."""
    median = float(np.median(grey))
    if median > 127.5:
        grey = np.float32(255.0) - grey
        median = 255.0 - median
    ink = np.clip(grey - np.float32(median), 0.0, None)
    peak = float(ink.max())
    if peak < INK_THRESHOLD:
        raise ImageInputError(BLANK_MESSAGE)
    margin = MNIST_MARGIN
    inner = np.zeros(ink.shape, dtype=bool)
    inner[margin:-margin, margin:-margin] = True
    if float(ink[~inner].max(initial=0.0)) >= INK_THRESHOLD:
        return None
    stretched: np.ndarray = ink * np.float32(255.0 / peak)
    return stretched


def grey_to_mnist(grey: np.ndarray) -> np.ndarray:
    """`read_grey` without the count of other digits: the (28, 28) array only."""
    return read_grey(grey)[0]


def read_grey(grey: np.ndarray) -> tuple[np.ndarray, int]:
    """Grey levels (H, W) 0-255 of one digit -> a (28, 28) float32 array, MNIST-style, and
    the number of other digit-like shapes beside it (several digits in one image).

    A 28x28 image that already is an MNIST grid is only normalised (`_already_mnist`).
    Otherwise: work at most WORK_SIDE px a side; turn the ink light on dark and remove the
    lighting (`_ink_map`); find the digit's pixels (`_digit_mask`); stretch its ink so the
    strokes' core is 255; crop to it; scale the longest side to 20 px (aspect kept,
    antialiased); paste into 28x28 with the centre of mass at the centre. Training builds its
    photo-like examples through this same function.
    """
    grey = np.asarray(grey, dtype=np.float32)
    if grey.shape == (MNIST_SIDE, MNIST_SIDE):
        as_is = _already_mnist(grey)
        if as_is is not None:
            return as_is, 0
    height, width = grey.shape
    shrink = min(1.0, WORK_SIDE / max(height, width))
    if shrink < 1.0:
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    elif max(height, width) < MIN_WORK_SIDE:
        grow = MIN_WORK_SIDE / max(height, width)
        size = (max(1, round(width * grow)), max(1, round(height * grow)))
        grey = np.clip(cv2.resize(grey, size, interpolation=cv2.INTER_CUBIC), 0.0, 255.0)
    ink = _ink_map(grey)
    mask, others = _digit_mask(ink)
    strokes = ink[mask]
    core = float(np.percentile(strokes, CORE_PERCENTILE))
    ink = np.where(mask, np.clip(ink * (255.0 / max(core, 1e-6)), 0.0, 255.0), 0.0)
    # Crop to the ink itself (as MNIST did), not to the mask's blurred rim.
    inked = ink > INK_THRESHOLD
    if not inked.any():
        raise ImageInputError(BLANK_MESSAGE)
    rows = np.flatnonzero(inked.any(axis=1))
    cols = np.flatnonzero(inked.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    height, width = ink.shape
    scale = MNIST_BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    boxed = Image.fromarray(np.rint(ink).astype(np.uint8)).resize(
        new_size, Image.Resampling.LANCZOS
    )
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
    return canvas, others


def image_bytes_to_mnist(
    data: bytes, max_pixels: int, budget: RequestBudget | None = None
) -> np.ndarray:
    """Decode image bytes and convert them the MNIST way (see `to_mnist`)."""
    return to_mnist(decode_image(data, max_pixels, budget))


def read_image_bytes(
    data: bytes, max_pixels: int, budget: RequestBudget | None = None
) -> tuple[np.ndarray, int]:
    """`image_bytes_to_mnist`, with how many other digit-like shapes stood beside the one
    read (0 for one digit; see `read_grey`)."""
    return read_grey(_to_grey(decode_image(data, max_pixels, budget)))


def images_to_model_input(images: npt.ArrayLike) -> np.ndarray:
    """Stack (28, 28) grey-level images into the (N, 28, 28, 1) float32 batch the CNN takes.

    Training calls this on the MNIST arrays and serving on request images, so both feed the
    network the same layout and scale (0-255; the model rescales inside its graph).
    """
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim != 3:
        raise ValueError(f"expected (N, height, width) images, got shape {batch.shape}")
    return batch[..., np.newaxis]
