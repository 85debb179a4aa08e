"""Input warnings per kind (issue 23): tabular ranges and text vocabulary, with the thresholds
of the committed cards' `out_of_domain` sections; bounded probabilities; the V2 output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from app.codecs.v2 import encode_response
from app.kinds import bound_probabilities, make_adapter
from app.kinds.base import InputAdapter, InputWarning, RowWarnings
from app.schemas.card import ModelCard

MODELS = Path(__file__).resolve().parents[2] / "models"


def _adapter(name: str) -> InputAdapter:
    folder = MODELS / name / "2"
    return make_adapter(ModelCard.read(folder), folder)


def _warned(adapter: InputAdapter, instances: list[Any]) -> list[RowWarnings]:
    rows = [adapter.to_row(instance) for instance in instances]
    return adapter.warnings(rows, adapter.featurize(rows)) or [()] * len(rows)


def test_an_iris_ten_times_too_large_is_warned_and_a_real_one_is_not() -> None:
    adapter = _adapter("iris-knn")
    real, huge = [5.1, 3.5, 1.4, 0.2], [51.0, 35.0, 14.0, 2.0]
    plain, large = _warned(adapter, [real, huge])
    assert plain == ()
    assert [w.code for w in large] == ["feature_out_of_range"]
    assert "sepal_length = 51" in large[0].message


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


def test_a_card_without_an_out_of_domain_section_gives_no_warnings(tmp_path: Path) -> None:
    folder = MODELS / "iris-knn" / "2"
    card = ModelCard.read(folder).model_copy(update={"out_of_domain": None})
    adapter = make_adapter(card, folder)
    rows = [adapter.to_row([51.0, 35.0, 14.0, 2.0])]
    assert adapter.warnings(rows, adapter.featurize(rows)) is None


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_probabilities_are_bounded_away_from_0_and_1_keeping_order_and_sum(classes: int) -> None:
    rng = np.random.default_rng(classes)
    raw = rng.dirichlet(np.ones(classes), size=50)
    raw[0] = np.eye(classes)[0]  # a saturated softmax
    bounded = bound_probabilities(raw, 1e-4)
    assert bounded.min() >= 1e-4 and bounded.max() <= 1 - (classes - 1) * 1e-4 + 1e-12
    np.testing.assert_allclose(bounded.sum(axis=1), 1.0)
    assert (np.argsort(bounded, axis=1) == np.argsort(raw, axis=1)).all()


def test_v2_warnings_output_holds_each_rows_list_as_json_text() -> None:
    warned = (InputWarning("unknown_words", "6 of 7 words are unknown"),)
    body, _, _ = encode_response(
        "m",
        1,
        None,
        ["a", "b"],
        np.array([[0.3, 0.7], [0.6, 0.4]]),
        [("warnings", False)],
        [(), warned],
    )
    output = orjson.loads(body)["outputs"][0]
    assert output["name"] == "warnings" and output["shape"] == [2]
    assert [orjson.loads(text) for text in output["data"]] == [
        [],
        [{"code": "unknown_words", "message": "6 of 7 words are unknown"}],
    ]


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
