"""Reliability tables, ECE and temperature scaling (training/calibration.py, common.py)."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import expected_calibration_error, fit_temperature, reliability


def test_ece_of_a_perfectly_calibrated_and_of_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200_000)
    correct = rng.random(confidence.size) < confidence  # right as often as it says
    y_true = np.where(correct, 1, 0)
    probabilities = np.stack([1 - confidence, confidence], axis=1)
    assert expected_calibration_error(y_true, probabilities) < 0.005
    always_sure = np.stack([np.zeros_like(confidence), np.ones_like(confidence)], axis=1)
    assert expected_calibration_error(y_true, always_sure) == pytest.approx(
        1 - correct.mean(), abs=1e-6
    )


def test_reliability_table_has_15_equal_bins_that_add_up() -> None:
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.97, 0.03], [0.2, 0.8]])
    y_true = np.array([0, 0, 0, 1])
    ece, table = reliability(y_true, probabilities)
    assert len(table) == 15 and table[0].low == 0 and table[-1].high == 1
    assert sum(row.count for row in table) == 4
    top = table[-1]  # (0.933, 1]: only the 0.97 prediction, right
    assert top.count == 1 and top.mean_confidence == pytest.approx(0.97) and top.accuracy == 1
    # |0.9-1| + |0.6-0| + |0.97-1| + |0.8-1|, over 4
    assert ece == pytest.approx((0.1 + 0.6 + 0.03 + 0.2) / 4, abs=1e-6)


def test_sigmoid_outputs_are_read_as_two_classes() -> None:
    p_positive = np.array([0.9, 0.2, 0.6])
    assert reliability(np.array([1, 0, 0]), p_positive[:, None])[0] == pytest.approx(
        reliability(np.array([1, 0, 0]), np.stack([1 - p_positive, p_positive], axis=1))[0]
    )


@pytest.mark.parametrize("classes", [1, 10])
def test_temperature_is_recovered_from_data_it_generated(classes: int) -> None:
    rng = np.random.default_rng(1)
    true_temperature = 2.5
    if classes == 1:
        logits = rng.normal(0, 6, 20_000)
        y_true = (rng.random(logits.size) < 1 / (1 + np.exp(-logits / true_temperature))).astype(
            int
        )
    else:
        logits = rng.normal(0, 5, (20_000, classes))
        scaled = np.exp(logits / true_temperature)
        p = scaled / scaled.sum(axis=1, keepdims=True)
        y_true = np.array([rng.choice(classes, p=row) for row in p])
    assert fit_temperature(logits, y_true) == pytest.approx(true_temperature, rel=0.05)


def test_temperature_is_baked_into_the_last_layer_and_keeps_the_argmax() -> None:
    import keras

    from training.common import calibrate_keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, outputs)
    last = model.layers[-1]
    last.set_weights([w * 8 for w in last.get_weights()])  # overconfident on purpose
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    y = rng.integers(0, 3, 3000)
    before = model.predict(x, verbose=0)
    calibration = calibrate_keras(model, x[:2000], y[:2000], x[2000:], y[2000:], "test", "val")
    after = model.predict(x, verbose=0)
    assert calibration.temperature is not None and calibration.temperature > 1
    np.testing.assert_array_equal(before.argmax(axis=1), after.argmax(axis=1))
    assert after.max(axis=1).mean() < before.max(axis=1).mean()
    assert calibration.ece_after < calibration.ece_before
    assert len(model.layers) == 3  # no new layer: the file loads anywhere the old one did
