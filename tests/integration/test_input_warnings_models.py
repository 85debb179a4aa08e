"""Input warnings that need a committed model's artifacts: the IMDb vocabulary (unknown and too
few words) and the MNIST embedding (several digits in one image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.preprocessing.text import TextVectorizer
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


def test_the_served_path_warns_reviews_from_the_counts_of_their_one_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The served path: rows from to_row, encoded per batch by featurize_batch, whose word
    # counts the warnings read; the same warnings as counting each text again.
    adapter = _adapter("imdb-sentiment")
    texts = [
        "A moving, beautifully acted film; the best I have seen this year.",
        "Der Film war wirklich sehr schlecht und langweilig.",
        "great movie",
        "Una historia <b>aburrida</b> y los actores no tienen talento, pero la música es buena.",
    ]
    expected = _warned(adapter, texts)
    rows = [adapter.to_row(text) for text in texts]
    features, refused = adapter.featurize_batch(rows)
    assert refused == {}

    def no_second_split(text: str) -> tuple[int, int]:
        raise AssertionError("the batch's texts were split again for the warnings")

    monkeypatch.setattr(TextVectorizer, "word_counts", no_second_split)
    assert (adapter.warnings(rows, features) or [()] * len(rows)) == expected


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


def test_letters_the_model_never_saw_are_warned_and_test_digits_are_not() -> None:
    from app.errors import ServingError
    from app.runtimes import load_model
    from app.schemas.card import ModelCard
    from tests.input_warnings import MODELS
    from training.digit_families import png
    from training.outliers import families

    folder = MODELS / "mnist-cnn" / "2"
    model = load_model(ModelCard.read(folder), folder, buckets=(1, 64, 256))
    adapter = _adapter("mnist-cnn")

    def warned(rows: list[np.ndarray]) -> int:
        features = adapter.featurize(rows)
        found = adapter.warnings(rows, features, model.predict_embedded(features)[1]) or []
        return sum(1 for codes in found if "unlike_training_images" in {w.code for w in codes})

    with np.load(Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist.npz") as data:
        digits = data["x_test"][:200].astype(np.float32)
    make = families("held-out", digits, np.random.default_rng(5))["printed letters"]
    letters = []
    for _ in range(40):
        try:
            letters.append(adapter.image_to_row(png(make())))
        except ServingError:  # refused as blank: never served, so nothing to warn
            continue
    assert warned(letters) >= 0.7 * len(letters)  # 80% measured on 300; 16% before
    assert warned([adapter.to_row(digit) for digit in digits]) <= 4
