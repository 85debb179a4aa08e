"""Input warnings that need a committed model's artifacts: the IMDb vocabulary (unknown and too
few words) and the MNIST embedding (several digits in one image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.input_warnings import adapter as _adapter
from tests.input_warnings import warned as _warned


def test_foreign_and_tiny_reviews_are_warned_and_an_english_one_is_not() -> None:
    adapter = _adapter("imdb-sentiment")
    english = (
        "This movie was a complete waste of time. The acting was terrible and the plot made "
        "no sense at all, I would not recommend it to anyone."
    )
    german = "Der Film war wirklich sehr schlecht und langweilig."  # 5 of 7 words unknown
    spanish = "La película fue muy aburrida, los actores no tienen talento."
    found = _warned(adapter, [english, german, spanish, "great movie"])
    assert found[0] == ()
    assert "unknown_words" in {w.code for w in found[1]}
    assert "unknown_words" in {w.code for w in found[2]}
    assert "too_few_words" in {w.code for w in found[3]}


def test_an_image_of_two_digits_is_warned_on_its_row() -> None:
    import io

    from PIL import Image

    adapter = _adapter("mnist-cnn")
    with np.load(Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist.npz") as data:
        first, second = data["x_test"][:2]
    pair = np.concatenate([np.pad(first, 4), np.pad(second, 4)], axis=1)
    files = []
    for grey in (255 - pair, 255 - np.pad(first, 4)):
        buffer = io.BytesIO()
        Image.fromarray(grey.astype(np.uint8)).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    rows = [adapter.image_to_row(data) for data in files]
    warned = adapter.warnings(rows, adapter.featurize(rows)) or [(), ()]
    assert "several_digits" in {w.code for w in warned[0]}
    assert "several_digits" not in {w.code for w in warned[1]}
