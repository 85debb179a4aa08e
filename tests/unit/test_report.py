"""The report page's pieces: per-class metrics, the training helpers behind its optional
artifacts (ROC points, misclassified rows), charts as accessible SVG."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from app.report import charts
from app.report.content import digit_png, per_class
from training.common import evaluate, misclassified_examples, roc_points


def test_per_class_metrics_match_scikit_learn_on_the_same_predictions() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 4, 500))
    y_pred[y_pred == 3] = 2  # class 3 never predicted: precision 0 by convention, not NaN
    matrix = np.zeros((4, 4), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    ours = per_class(matrix.tolist(), ["a", "b", "c", "d"])
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2, 3], zero_division=0
    )
    for i, c in enumerate(ours):
        assert c.support == support[i]
        assert c.precision == pytest.approx(precision[i])
        assert c.recall == pytest.approx(recall[i])
        assert c.f1 == pytest.approx(f1[i])


def test_misclassified_examples_are_the_wrong_rows_most_confident_first() -> None:
    instances = [f"review {i}" for i in range(6)]
    y_true = np.array([0, 1, 0, 1, 0, 1])
    # Sigmoid outputs (N, 1): rows 1, 2 and 4 are wrong, row 2 the most confidently.
    positive = np.array([[0.1], [0.4], [0.95], [0.8], [0.7], [0.9]])
    errors = misclassified_examples(instances, y_true, positive, ["neg", "pos"], "test", limit=2)
    assert errors["rows"] == 6 and errors["wrong"] == 3 and errors["evaluated_on"] == "test"
    assert [e["index"] for e in errors["examples"]] == [2, 4]
    first = errors["examples"][0]
    assert first == {
        "index": 2,
        "instance": "review 2",
        "label": "neg",
        "predicted": "pos",
        "confidence": 0.95,
    }


def test_evaluate_records_a_thin_roc_curve_for_binary_models_only() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    scores = np.clip(y * 0.3 + rng.random(2000) * 0.7, 0, 1)
    points = roc_points(y, scores)
    assert len(points) <= 101 and points[0] == [0.0, 0.0] and points[-1] == [1.0, 1.0]
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(points))
    binary = evaluate(y, scores[:, None], ["0", "1"], "test")
    assert binary.roc_curve == points and binary.roc_auc is not None
    three = evaluate(y, np.eye(3)[y], ["a", "b", "c"], "test")
    assert three.roc_curve is None


def test_charts_are_labelled_svg_that_scale() -> None:
    svg = charts.confusion_heatmap([[5, 1], [2, 7]], ["no", "yes"])
    assert svg.startswith("<svg ") and 'role="img"' in svg and "aria-label=" in svg
    assert "<title>Confusion matrix" in svg
    opening = svg[: svg.index(">")]
    assert "viewBox" in opening and " width=" not in opening and " height=" not in opening
    # Text stays text (no embedded glyph paths) and the axes are named.
    assert "Predicted label" in svg and "True label" in svg
    assert svg == charts.confusion_heatmap([[5, 1], [2, 7]], ["no", "yes"])  # deterministic
    curves = charts.training_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    assert "Epoch" in curves and "validation" in curves


def test_digit_png_draws_grids_and_refuses_the_rest() -> None:
    import base64
    import io

    from PIL import Image

    png = digit_png([[0, 255], [128, 0]], scale=3)
    assert png is not None
    image = Image.open(io.BytesIO(base64.b64decode(png)))
    assert image.size == (6, 6) and image.getpixel((3, 0)) == 255
    assert digit_png("a review") is None
    assert digit_png([1, 2, 3]) is None


def test_calibration_lights_up_when_the_card_has_it() -> None:
    """The shape the calibration work adds to the card (ECE before/after, a reliability table
    per bin); a card without it says so."""
    from app.report.quality import calibration as _calibration
    from app.schemas.card import ModelCard
    from tests.conftest import COMMITTED_MODELS, COMMITTED_VERSION

    card = ModelCard.read(COMMITTED_MODELS / "mnist-cnn" / COMMITTED_VERSION)
    uncalibrated = card.model_copy(update={"calibration": None})
    assert "Calibration: not recorded for this version" in _calibration(uncalibrated)
    bins = [
        {
            "low": i / 10,
            "high": (i + 1) / 10,
            "count": 10 * i,
            "mean_confidence": i / 10 + 0.05,
            "accuracy": i / 10,
        }
        for i in range(10)
    ]
    calibration = {
        "method": "temperature scaling",
        "fitted_on": "the validation split",
        "temperature": 1.5,
        "evaluated_on": "test",
        "bins": 10,
        "ece_before": 0.0412,
        "ece_after": 0.0081,
        "accuracy_before": 0.99,
        "reliability": bins,
    }
    html = _calibration(card.model_copy(update={"calibration": calibration}))
    assert "not recorded" not in html
    assert '<span class="value">0.0412</span>' in html and "0.0081" in html
    assert 'aria-label="Reliability diagram over 9 non-empty confidence bins' in html
    assert "<td>0.90 to 1.00</td><td class=num>90</td>" in html


@pytest.mark.parametrize(
    "text",
    [
        "<!--<script>",
        "</script><script>alert(1)</script>",
        "</SCRIPT >",
        "<!-- a comment that never ends",
        "a & b > c < d",
        "\u2028\u2029 line separators",
        "]]>-->",
    ],
)
def test_json_in_a_script_element_cannot_end_or_escape_it(text: str) -> None:
    import json

    from app.report.page import script_json

    encoded = script_json({"sample": text, "nested": [text]})
    # No character that the HTML parser acts on inside a script element.
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert json.loads(encoded) == {"sample": text, "nested": [text]}
