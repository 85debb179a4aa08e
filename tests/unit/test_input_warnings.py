"""Input warnings per kind (issue 23): tabular ranges and text vocabulary, with the thresholds
of the committed cards' `out_of_domain` sections; bounded probabilities; the V2 output.
Warnings that need a model's vocabulary or embedding:
tests/integration/test_input_warnings_models.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from app.codecs.v2 import encode_response
from app.kinds import bound_probabilities, make_adapter
from app.kinds.base import InputAdapter, InputWarning
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


def _energy_adapter(tmp_path: Path, max_energy: float) -> InputAdapter:
    """mnist-cnn's card with an energy check on a made-up last layer: logits = features (the
    kernel is the identity), bias 0."""
    from app.schemas.card import OutOfDomainChecks

    folder = MODELS / "mnist-cnn" / "2"
    card = ModelCard.read(folder)
    classes = len(card.labels)
    np.savez(
        tmp_path / "embedding.npz",
        means=np.zeros((classes, classes), dtype=np.float32),
        precision=np.eye(classes),
        kernel=np.eye(classes),
        bias=np.zeros(classes),
    )
    checks = OutOfDomainChecks(
        method="energy",
        fitted_on="made up",
        embedding_statistics_file="embedding.npz",
        max_energy=max_energy,
        held_out_warned=0.0,
        out_of_domain_warned={},
    )
    artifacts = {**card.artifacts, "embedding.npz": "0" * 64}
    card = card.model_copy(update={"out_of_domain": checks, "artifacts": artifacts})
    return make_adapter(card, tmp_path)


def test_energy_score_is_minus_logsumexp_of_the_logits() -> None:
    from app.kinds.image import energy_scores

    features = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [1000.0, 999.0, -5.0]])
    scores = energy_scores(features, np.eye(3), np.zeros(3))
    expected = -np.log(np.exp(features - features.max(axis=1, keepdims=True)).sum(axis=1))
    expected -= features.max(axis=1)
    np.testing.assert_allclose(scores, expected)
    assert scores[0] == pytest.approx(-np.log(3.0))  # flat logits: the highest energy here
    assert scores[1] < scores[0]


def test_an_image_whose_logits_are_flat_is_warned_and_a_confident_one_is_not(
    tmp_path: Path,
) -> None:
    adapter = _energy_adapter(tmp_path, max_energy=-5.0)
    rows = [np.zeros((28, 28), dtype=np.float32)] * 2
    confident = np.zeros(10)
    confident[3] = 12.0  # energy about -12
    flat = np.full(10, 1.0)  # energy -1 - log(10), about -3.3: above -5
    warned = adapter.warnings(rows, adapter.featurize(rows), np.stack([confident, flat]))
    assert warned is not None
    assert warned[0] == ()
    assert [w.code for w in warned[1]] == ["unlike_training_images"]
    assert "energy score -3.30" in warned[1][0].message
