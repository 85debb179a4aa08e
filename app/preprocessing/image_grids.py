"""A client's grid of grey levels (JSON or a V2 tensor) -> the model's 28x28 input: the scale
(0-1 or 0-255), a grid already laid out the MNIST way used as is, others normalised like an
image file (`app.preprocessing.image.grey_to_mnist`)."""

from __future__ import annotations

import functools

import numpy as np

from app.preprocessing.image import (
    BLANK_MESSAGE,
    INK_THRESHOLD,
    MNIST_MARGIN,
    MNIST_SIDE,
    grey_to_mnist,
)
from app.preprocessing.image_decode import ImageInputError


def grid_to_mnist_scale(grid: np.ndarray) -> np.ndarray:
    """A client's grid of grey levels (white ink on black) on the 0-255 scale the model takes.

    A grid whose values all lie within [0, 1] is read as 0-1 scaled (`x / 255.0`, as the Keras
    tutorials do) and multiplied by 255: on the 0-255 scale such a grid would be blank (at most
    one grey level of ink), so this reading is never ambiguous for a real digit. Raises
    ImageInputError (the same blank message as an image file) when no ink stands out: every
    value equal, or less than INK_THRESHOLD grey levels between the darkest and the brightest.
    Values must already be within 0-255 (the adapters check that first).
    """
    low, high = float(grid.min()), float(grid.max())
    if high <= 1.0:
        grid = grid * np.float32(255.0)
        low, high = low * 255.0, high * 255.0
    if high - low < INK_THRESHOLD:
        raise ImageInputError(BLANK_MESSAGE)
    return grid


def read_grid(grid: np.ndarray) -> np.ndarray:
    """A client's grid of grey levels (any polarity, 0-1 or 0-255) -> the model's 28x28 input.

    The same reading as an image file (`grey_to_mnist`): a grid already laid out the MNIST way
    (white digit on black, clear of the edge) is used as is; a black digit on white is turned
    over; a digit that fills the grid or sits off-centre is boxed and centred. So a grid and
    the same pixels sent as a PNG give the same answer. Raises ImageInputError when blank.
    """
    grey = grid_to_mnist_scale(grid)
    if grey.shape == (MNIST_SIDE, MNIST_SIDE) and _plain_mnist(grey):
        return grey
    return grey_to_mnist(grey)


def read_grids(grids: np.ndarray) -> list[np.ndarray]:
    """`[read_grid(grid) for grid in grids]` for a float32 batch `(N, H, W)` of grids within
    0-255, at half the cost for the common case (a 0-255 grid laid out the MNIST way, used as
    is): a single-image request decodes on the event loop, where each of read_grid's ten
    NumPy calls costs a microsecond. Raises ImageInputError when a grid is blank."""
    largest, smallest = np.maximum.reduce, np.minimum.reduce
    ring = _ring_indices(grids.shape[1:]) if grids.shape[1:] == (MNIST_SIDE, MNIST_SIDE) else None
    half = grids[0].size // 2 if len(grids) else 0
    rows = []
    for grid in grids:
        low, high = float(smallest(grid, axis=None)), float(largest(grid, axis=None))
        if high <= 1.0:  # 0-1 scaled: read_grid scales it first (rare)
            rows.append(read_grid(grid))
            continue
        if high - low < INK_THRESHOLD:
            raise ImageInputError(BLANK_MESSAGE)
        # _plain_mnist, with the outer ring's pixels taken in one call instead of four.
        plain = (
            ring is not None
            and int(np.count_nonzero(grid)) < half
            and float(largest(grid.ravel().take(ring))) < INK_THRESHOLD
        )
        rows.append(grid if plain else grey_to_mnist(grid))
    return rows


@functools.cache
def _ring_indices(shape: tuple[int, ...]) -> np.ndarray:
    """Flat indices of a grid's outer MNIST_MARGIN-pixel ring."""
    ring = np.ones(shape, dtype=bool)
    ring[MNIST_MARGIN:-MNIST_MARGIN, MNIST_MARGIN:-MNIST_MARGIN] = False
    return np.flatnonzero(ring)


def _plain_mnist(grey: np.ndarray) -> bool:
    # The common case, at a few microseconds: black background (over half the pixels are
    # exactly 0, so the median is 0) and no ink in the outer ring. Such a grid is used as is,
    # as it always was (`_already_mnist` would only stretch its peak to 255).
    ring = MNIST_MARGIN
    return (
        int(np.count_nonzero(grey)) < grey.size // 2
        and float(grey[:ring].max()) < INK_THRESHOLD
        and float(grey[-ring:].max()) < INK_THRESHOLD
        and float(grey[:, :ring].max()) < INK_THRESHOLD
        and float(grey[:, -ring:].max()) < INK_THRESHOLD
    )
