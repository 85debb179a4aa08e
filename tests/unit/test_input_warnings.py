"""Input warnings per kind (issue 23): tabular ranges and text vocabulary, with the thresholds
of the committed cards' `out_of_domain` sections; bounded probabilities; the V2 output.
Warnings that need a model's vocabulary or embedding:
tests/integration/test_input_warnings_models.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from app.adapters import bound_probabilities, make_adapter
from app.adapters.base import InputWarning
from app.codecs.v2 import encode_response
from app.schemas.card import ModelCard
from tests.input_warnings import MODELS
from tests.input_warnings import adapter as _adapter
from tests.input_warnings import warned as _warned


def test_an_iris_ten_times_too_large_is_warned_and_a_real_one_is_not() -> None:
    adapter = _adapter("iris-knn")
    real, huge = [5.1, 3.5, 1.4, 0.2], [51.0, 35.0, 14.0, 2.0]
    plain, large = _warned(adapter, [real, huge])
    assert plain == ()
    assert [w.code for w in large] == ["feature_out_of_range"]
    assert "sepal_length = 51" in large[0].message


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
