"""`:explain` over HTTP: every model and input form, the prediction it explains, its errors,
limits, metrics and documented examples."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.explain.image import CAPTION_HEIGHT, captioned_png
from app.preprocessing.text import tokenize
from app.schemas.card import ModelCard
from app.schemas.explain import ExplainResponse
from tests.conftest import MODEL_NAMES, ROOT, assert_error, card_examples, predict, running_app


def explain(client: Any, model: str, instances: list[Any], path: str = "") -> Any:
    url = f"/v1/models/{model}{path}:explain"
    return client.post(url, json={"instances": instances})


def _complete(explanation: dict[str, Any]) -> None:
    completeness = explanation["completeness"]
    difference = completeness["prediction_minus_baseline"]
    bound = max(0.02 * abs(difference), 0.01)
    assert abs(completeness["sum_of_attributions"] - difference) <= bound, completeness
    assert completeness["error"] <= completeness["tolerance"]


def _same_prediction(explanation: dict[str, Any], prediction: dict[str, Any]) -> None:
    assert explanation["label"] == prediction["label"]
    assert explanation["explained_label"] == prediction["label"]
    for label, probability in prediction["probabilities"].items():
        assert explanation["probabilities"][label] == pytest.approx(probability, abs=1e-5)


def _png_b64(grid: list[list[float]]) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(grid, dtype=np.uint8), mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _forms(tiny_models_dir: Path, name: str) -> list[Any]:
    """Every input form the model's `:predict` takes, built from its card's examples."""
    instances = [instance for instance, _ in card_examples(tiny_models_dir, name)]
    card = ModelCard.read(tiny_models_dir / name / "1")
    if card.input.kind == "tabular":
        names = [feature.name for feature in card.input.features]
        as_list = [list(i.values()) if isinstance(i, dict) else i for i in instances]
        return as_list + [dict(zip(names, values, strict=True)) for values in as_list]
    if card.input.kind == "image":
        return [*instances[:2], {"b64": _png_b64(instances[0])}]
    return instances


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_explains_every_input_form_as_it_predicts_it(
    client: Any, tiny_models_dir: Path, name: str
) -> None:
    instances = _forms(tiny_models_dir, name)
    response = explain(client, name, instances)
    assert response.status_code == 200, response.text
    body = response.json()
    ExplainResponse.model_validate(body)
    assert body["model"] == name and body["version"] == 1
    predictions = predict(client, name, instances).json()["predictions"]
    card = ModelCard.read(tiny_models_dir / name / "1")
    for instance, explanation, prediction in zip(
        instances, body["explanations"], predictions, strict=True
    ):
        _same_prediction(explanation, prediction)
        _complete(explanation)
        assert explanation["method"]["name"]
        if card.input.kind == "tabular":
            names = [feature.name for feature in card.input.features]
            assert list(explanation["attributions"]) == names
            assert list(explanation["baseline"]["features"]) == names
            assert set(explanation["baseline"]["probabilities"]) == set(card.labels)
            # Both tabular artifacts hold their training mean (a fitted KNN, a Normalization
            # layer): the runtime hands it over, the baseline is never zeros.
            assert explanation["baseline"]["kind"].startswith("mean of the training data")
        elif card.input.kind == "image":
            grid = np.asarray(explanation["attribution_map"])
            assert grid.shape == (28, 28)
            overlay = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png"])))
            assert overlay.format == "PNG" and overlay.size == (224, 224)
            assert explanation["method"]["steps"] >= 2
        else:
            assert explanation["tokens"] and all("attribution" in t for t in explanation["tokens"])
            # The words read as the review and carry every token's attribution.
            words = explanation["words"]
            assert [w["word"] for w in words] == tokenize(instance)
            assert sum(w["attribution"] for w in words) == pytest.approx(
                sum(t["attribution"] for t in explanation["tokens"]), abs=1e-9
            )
    if name == "iris-knn":
        neighbours = body["explanations"][0]["neighbors"]
        assert len(neighbours["neighbors"]) == neighbours["k"] >= 1
        distances = [n["distance"] for n in neighbours["neighbors"]]
        assert distances == sorted(distances)
        assert {n["label"] for n in neighbours["neighbors"]} <= set(card.labels)
    versioned = explain(client, name, instances[:1], "/versions/1")
    assert versioned.status_code == 200
    assert versioned.json()["explanations"][0]["label"] == predictions[0]["label"]


def test_an_uploaded_image_is_explained_like_its_predict_image(client: Any) -> None:
    data = (ROOT / "samples" / "digit-drawing.png").read_bytes()
    files = {"file": ("digit.png", data, "image/png")}
    explained = client.post("/v1/models/mnist-cnn:explain-image", files=files)
    assert explained.status_code == 200, explained.text
    predicted = client.post("/v1/models/mnist-cnn:predict-image", files=files).json()
    explanation = explained.json()["explanations"][0]
    _same_prediction(explanation, predicted["predictions"][0])
    _complete(explanation)
    picture = client.post("/v1/models/mnist-cnn:explain-image?format=png", files=files)
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    # The picture travels alone, so it says what it explains: label and probability in a
    # caption under the overlay, and in headers.
    label = explanation["explained_label"]
    assert picture.headers["x-explained-label"] == label
    probability = float(picture.headers["x-explained-probability"])
    assert probability == pytest.approx(explanation["probabilities"][label], abs=1e-6)
    captioned = Image.open(io.BytesIO(picture.content)).convert("RGB")
    overlay = Image.open(io.BytesIO(base64.b64decode(explanation["overlay_png"]))).convert("RGB")
    assert captioned.size == (224, 224 + CAPTION_HEIGHT)
    assert np.array_equal(np.asarray(captioned)[:224], np.asarray(overlay))
    band = np.asarray(captioned)[224:]
    assert (band < 128).any() and (band == 255).any()  # dark text on white
    other = captioned_png(explanation["overlay_png"], "7", 0.25)
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(other)))[224:], band[..., :3])
    assert_error(
        client.post("/v1/models/mnist-cnn:explain-image?format=gif", files=files), 422, "format"
    )
    assert_error(
        client.post("/v1/models/iris-knn:explain-image", files=files), 404, ":explain with"
    )
    garbage = {"file": ("x.png", b"not an image", "image/png")}
    assert client.post("/v1/models/mnist-cnn:explain-image", files=garbage).status_code == 422


def test_the_tokens_are_what_the_model_saw_with_unknown_words_marked(client: Any) -> None:
    text = "A wonderful film, truly great. Zorblaxian quuxification!"
    explanation = explain(client, "imdb-sentiment", [text]).json()["explanations"][0]
    tokens = explanation["tokens"]
    assert set(explanation["unknown_words"]) >= {"zorblaxian", "quuxification"}
    unknown = [t for t in tokens if t["unknown"]]
    assert len(unknown) == 1 and unknown[0]["token"] == "[UNK]"
    assert set(unknown[0]["stands_for"]) == set(explanation["unknown_words"])
    known = [t["token"] for t in tokens if not t["unknown"]]
    assert "film" in known or "great" in known
    # Words before pairs that start at the same place, in the text's order.
    words = [t for t in known if " " not in t]
    order = ["a", "wonderful", "film", "truly", "great"]
    assert words == [w for w in order if w in words]
    _complete(explanation)


def test_explain_errors_are_the_services_errors(client: Any) -> None:
    assert_error(explain(client, "nope", [[1, 2, 3, 4]]), 404, "unknown model")
    assert_error(explain(client, "iris-knn", [[1, 2, 3]]), 422, "instances[0]")
    assert_error(explain(client, "iris-knn", []), 422, "empty")
    assert_error(explain(client, "iris-knn", [[1, 2, 3, 4]], "/versions/9"), 404)
    bad_json = client.post(
        "/v1/models/iris-knn:explain",
        content=b'{"instances": [',
        headers={"content-type": "application/json"},
    )
    assert_error(bad_json, 400, "not valid JSON")
    text = client.post(
        "/v1/models/iris-knn:explain", content=b"x", headers={"content-type": "text/plain"}
    )
    assert_error(text, 415, "JSON")
    assert_error(explain(client, "mnist-cnn", [{"b64": "%%%"}]), 422, "base64")


def test_explain_has_its_own_instance_limit(client: Any) -> None:
    settings = client.app.state.settings
    over = [[5.1, 3.5, 1.4, 0.2]] * (settings.explain.explain_max_instances + 1)
    assert (
        settings.explain.explain_max_instances + 1 <= settings.limits.max_instances
    )  # predict takes it
    assert_error(explain(client, "iris-knn", over), 413, "at most")
    assert predict(client, "iris-knn", over).status_code == 200


def test_explanations_are_counted_and_timed(client: Any) -> None:
    assert explain(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]]).status_code == 200
    assert explain(client, "iris-knn", [[1, 2]]).status_code == 422
    text = client.get("/metrics").text
    assert 'synergy_explanations_total{model="iris-knn",status="ok",version="1"}' in text
    assert 'synergy_explanations_total{model="iris-knn",status="422",version="1"}' in text
    assert 'synergy_explanation_duration_seconds_count{model="iris-knn"}' in text


def test_every_documented_explain_example_works(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    documented = 0
    for name in MODEL_NAMES:
        for path in (
            f"/v1/models/{name}:explain",
            f"/v1/models/{name}/versions/{{version}}:explain",
        ):
            operation = schema["paths"][path]["post"]
            assert operation["responses"]["200"]["content"]["application/json"]["schema"]
            version = 1
            for parameter in operation.get("parameters", []):
                version = next(iter(parameter["examples"].values()))["value"]
            invalid = operation["responses"]["422"]["content"]["application/json"]["example"]
            refused = client.post(path.format(version=version), json={"instances": [None]})
            assert refused.status_code == 422 and refused.json() == invalid, path
            examples = operation["requestBody"]["content"]["application/json"]["examples"]
            for example in examples.values():
                response = client.post(path.format(version=version), json=example["value"])
                assert response.status_code == 200, (path, response.text)
                documented += 1
    assert "/v1/models/mnist-cnn:explain-image" in schema["paths"]
    assert "/v1/models/iris-knn:explain-image" not in schema["paths"]
    assert documented >= 2 * len(MODEL_NAMES)


def test_explanations_pass_through_the_deadline(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir, explain_timeout_ms=1) as client:
        response = explain(client, "mnist-cnn", [[[0] * 28] * 27 + [[255] * 28]])
        assert_error(response, 504, "deadline")


def test_a_review_with_no_known_word_is_refused_as_predict_refuses_it(client: Any) -> None:
    # Reviews are tokenised per batch now (on the model's worker, not in to_row): the
    # explanation path checks them the same way and names the instance.
    response = explain(client, "imdb-sentiment", ["a good film", "asdf qwerty"])
    assert_error(response, 422, "no known word", "instances[1]")
