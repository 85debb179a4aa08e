"""The raw-image kind (a user's image model: pixel values as the model takes them, no MNIST
reading) and the Keras importer's inference of image and text inputs from the input shape."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.errors import InvalidInput
from app.kinds import InputLimits, make_adapter, predict_request_model
from app.kinds.raw_image import RawImageAdapter, RawImageStatistics
from app.runtimes import UnservableArtifact, split_text_model
from app.schemas.card import CardExample, ModelCard, RawImageInput
from app.schemas.predict import B64Image
from training.importing.errors import ImportRefused
from training.importing.keras_model import keras_schema, value_range


def _card(**spec: Any) -> ModelCard:
    image = RawImageInput(**{"height": 4, "width": 5, "channels": 3, **spec})
    return ModelCard(
        name="m",
        version=1,
        description="d",
        framework="keras",
        task="multiclass-classification",
        input=image,
        labels=["a", "b", "c"],
        model_file="model.keras",
        artifacts={"model.keras": "0" * 64},
        hyperparameters={},
        library_versions={},
        created_at=datetime.now(UTC),
        examples=[CardExample(instance=np.zeros(image.row_shape).tolist(), label="a")],
    )


def _adapter(**spec: Any) -> RawImageAdapter:
    adapter = make_adapter(_card(**spec), Path("."), InputLimits())
    assert isinstance(adapter, RawImageAdapter)
    return adapter


def _png(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def test_values_go_to_the_model_as_they_are() -> None:
    adapter = _adapter(value_low=0.0, value_high=1.0)
    values = np.random.default_rng(0).random((4, 5, 3))
    row = adapter.to_row(values.tolist())
    assert row.dtype == np.float32 and row.shape == (4, 5, 3)
    np.testing.assert_allclose(row, values, rtol=1e-6)
    assert adapter.featurize([row, row]).shape == (2, 4, 5, 3)


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1), (5, 4, 3), (4, 5, 4)])
def test_a_wrong_shape_names_the_expected_one(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInput, match=r"4x5x3 \(height x width x channels\)"):
        _adapter().to_row(np.zeros(shape).tolist())


def test_ragged_lists_name_the_expected_shape() -> None:
    with pytest.raises(InvalidInput, match=r"4x5x3.*ragged"):
        _adapter().to_row([[[0.0, 0.0, 0.0]], [[0.0]]])


def test_values_outside_the_models_scale_are_refused() -> None:
    adapter = _adapter(value_low=0.0, value_high=1.0)
    values = np.zeros((4, 5, 3))
    values[2, 1, 0] = 255.0
    with pytest.raises(InvalidInput, match=r"0 to 1 .*found 255 at \[2, 1, 0\]"):
        adapter.to_row(values.tolist())
    unknown = _adapter()  # no scale recorded: any finite float32
    assert unknown.to_row(values.tolist()).max() == 255.0


def test_grey_takes_height_by_width_too() -> None:
    adapter = _adapter(channels=1, value_low=0.0, value_high=255.0)
    assert adapter.to_row(np.ones((4, 5)).tolist()).shape == (4, 5, 1)
    assert adapter.to_row(np.ones((4, 5, 1)).tolist()).shape == (4, 5, 1)
    flat = _adapter(channels=1, channel_axis=False)
    assert flat.tensor_spec.row_shape == (4, 5)
    with pytest.raises(InvalidInput, match=r"4x5 \(height x width\)"):
        flat.to_row(np.ones((4, 5, 1)).tolist())


def test_an_image_file_is_mapped_onto_the_models_scale_at_its_size() -> None:
    levels = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    for low, high in ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)):
        row = _adapter(value_low=low, value_high=high).image_to_row(_png(levels))
        np.testing.assert_allclose(row, low + levels / 255.0 * (high - low), atol=1e-5)
    with pytest.raises(InvalidInput, match=r"is 3x4 pixels .* exactly 5x4"):
        _adapter(value_low=0.0, value_high=1.0).image_to_row(_png(levels[:4, :3]))
    with pytest.raises(InvalidInput, match="scale is unknown"):
        _adapter().image_to_row(_png(levels))
    with pytest.raises(InvalidInput, match="not a PNG or JPEG"):
        _adapter(value_low=0.0, value_high=1.0).image_to_row(b"GIF89a not really")


def test_the_request_schema_takes_lists_or_a_file() -> None:
    card = _card(value_low=0.0, value_high=1.0)
    request = predict_request_model(card, max_instances=4, max_text_chars=10, examples=[])
    parsed = request.model_validate(  # type: ignore[attr-defined]
        {"instances": [np.zeros((4, 5, 3)).tolist(), {"b64": "AAAA"}]}
    ).instances
    assert isinstance(parsed[1], B64Image)
    with pytest.raises(ValueError, match=r"boolean|number"):
        request.model_validate({"instances": [[[[True, 0.0, 0.0]]]]})


def test_plain_bodies_skip_validation_only_when_in_range() -> None:
    adapter = _adapter(value_low=0.0, value_high=1.0)
    body = b'{"instances": [' + str(np.zeros((4, 5, 3)).tolist()).encode() + b"]}"
    rows = adapter.plain_rows(body, 10)
    assert rows is not None and rows[0].shape == (4, 5, 3)
    assert adapter.plain_rows(body.replace(b"0.0", b"2.0"), 10) is None
    assert adapter.max_values(2) == 2 * 4 * 5 * 3


def test_drift_statistics_per_channel_contrast_and_edges() -> None:
    spec = RawImageInput(height=4, width=5, channels=3, value_low=0.0, value_high=255.0)
    statistics = RawImageStatistics(spec)
    assert statistics.names == ["mean_red", "mean_green", "mean_blue", "contrast", "edges"]
    red = np.zeros((4, 5, 3))
    red[..., 0] = 255.0
    flat = statistics.compute([red])[0]
    np.testing.assert_allclose(flat[:3], [1.0, 0.0, 0.0])
    assert flat[4] == 0.0  # no neighbouring pixels differ
    stripes = np.zeros((4, 5, 3))
    stripes[:, ::2] = 255.0
    assert statistics.compute([stripes])[0][4] > 0.4
    compact = statistics.compact([red])[0]
    assert len(compact) == 4 * 5 * 3 and compact[0] == 255


def test_the_report_shows_images() -> None:
    card = _card(value_low=0.0, value_high=1.0)
    html = RawImageAdapter.report_examples(
        card,
        [{"instance": np.ones((4, 5, 3)).tolist(), "label": "a", "predicted": "b"}],
    )
    assert "data:image/png;base64," in html
    assert "RGB image, 4x5x3" in RawImageAdapter.report_inputs(card)
    assert "data:image/png" in RawImageAdapter.report_sample(card, card.examples[0])


def _keras_like(shape: tuple[Any, ...], dtype: str = "float32", units: int = 3) -> Any:
    layer = SimpleNamespace(get_config=lambda: {"activation": "softmax"})
    return SimpleNamespace(
        inputs=[SimpleNamespace(shape=shape, dtype=dtype)],
        outputs=[SimpleNamespace(shape=(None, units))],
        layers=[layer],
    )


def test_the_importer_reads_image_size_channels_and_scale() -> None:
    example = np.random.default_rng(2).integers(0, 256, (2, 8, 6, 3)).astype(np.float32)
    schema = keras_schema(_keras_like((None, 8, 6, 3)), "auto", None, None, example)
    spec = schema.input
    assert isinstance(spec, RawImageInput)
    assert (spec.height, spec.width, spec.channels, spec.channel_axis) == (8, 6, 3, True)
    assert (spec.value_low, spec.value_high) == (0.0, 255.0)
    assert schema.labels == ["0", "1", "2"]
    grey = keras_schema(_keras_like((None, 8, 6)), "auto", None, None, None).input
    assert isinstance(grey, RawImageInput) and not grey.channel_axis and grey.value_low is None
    with pytest.raises(ImportRefused, match="1 to 4 channels"):
        keras_schema(_keras_like((None, 8, 6, 7)), "auto", None, None, None)


def test_value_ranges_from_the_example() -> None:
    assert value_range(np.array([0.0, 0.5]))[:2] == (0.0, 1.0)
    assert value_range(np.array([0.0, 200.0]))[:2] == (0.0, 255.0)
    assert value_range(np.array([-0.5, 0.5]))[:2] == (-1.0, 1.0)
    assert value_range(np.array([-3.0, 3.0]))[:2] == (None, None)


def test_a_string_input_is_raw_text() -> None:
    model = _keras_like((None, 1), "string", units=1)
    schema = keras_schema(model, "auto", ["neg", "pos"], None, None)
    assert schema.input.kind == "raw-text" and schema.labels == ["neg", "pos"]
    with pytest.raises(ImportRefused, match="one text per instance"):
        keras_schema(_keras_like((None, 3), "string"), "auto", None, None, None)


def test_a_text_model_is_cut_after_its_text_vectorization_only_off_tensorflow() -> None:
    model = _keras_like((None, 1), "string", units=1)
    assert split_text_model(model, "tensorflow") == (None, model)
    # No TextVectorization layer reads the input: nothing to tokenise with on jax.
    other = SimpleNamespace(__name__="Dense", input=model.inputs[0])
    model.layers = [other]
    with pytest.raises(UnservableArtifact, match=r"on the jax backend .*KERAS_BACKEND=tensorflow"):
        split_text_model(model, "jax")


def test_the_explanation_cost_is_bounded_by_the_image_size() -> None:
    from app.attributions.image import IntegratedGradients
    from app.settings import ExplainSettings

    class Gradients:
        def input_gradient(self) -> Any:
            return lambda x, w: (np.zeros((len(x), 3)), np.zeros_like(x))

        def predict(self, x: np.ndarray) -> np.ndarray:
            return np.full((len(x), 3), 1 / 3)

    settings = ExplainSettings()
    small = _adapter(value_low=-1.0, value_high=1.0).explainer(Gradients(), settings)  # type: ignore[arg-type]
    assert isinstance(small, IntegratedGradients)
    assert small.max_steps == settings.explain_ig_max_steps and small.baseline_value == -1.0
    large = _adapter(height=224, width=224).explainer(Gradients(), settings)  # type: ignore[arg-type]
    assert isinstance(large, IntegratedGradients)
    assert large.max_steps * 224 * 224 * 3 <= 2**24 and large.max_steps >= settings.explain_ig_steps
