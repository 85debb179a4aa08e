"""The input kinds only imported models have (a mixed table, raw text) answer every part the
kinds own: the OpenAPI document (its `:explain` words), predictions, explanations and the
report page's input and sample sections.

At 7bf2c0c, with such a model loaded, building the OpenAPI document raised KeyError: the
`:explain` docs' table of methods had no entry for these kinds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.conftest import running_app
from training.importing import save_model

WORDS = ["good", "great", "bad", "awful", "film", "plot", "fine", "boring"]
TABLE_ROW = {"age": 30.0, "city": "paris", "member": True}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    models: Path = tmp_path_factory.mktemp("kinds") / "models"
    rng = np.random.default_rng(0)
    n = 120
    table = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "member": rng.random(n) < 0.5,
        }
    )
    label = np.where((table["city"] == "paris") | (table["age"] > 60), "yes", "no")
    mixed = make_pipeline(
        ColumnTransformer(
            [
                ("num", "passthrough", ["age"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                ("flag", "passthrough", ["member"]),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(table[:90], label[:90])
    save_model(mixed, "mixed-ct", example=table[90:93], models_dir=models)
    texts = [" ".join(rng.choice(WORDS, 8)) for _ in range(n)]
    positive = [
        t.count("good") + t.count("great") >= t.count("bad") + t.count("awful") for t in texts
    ]
    sentiment = ["pos" if p else "neg" for p in positive]
    words = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500))
    words.fit(texts[:90], sentiment[:90])
    save_model(words, "words-tfidf", example=texts[90:93], models_dir=models)
    with running_app(models) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("name", "method"),
    [("mixed-ct", "of the features, or of groups"), ("words-tfidf", "of the words, or of runs")],
)
def test_the_openapi_document_words_each_kinds_explanation(
    client: Any, name: str, method: str
) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    operation = response.json()["paths"][f"/v1/models/{name}:explain"]["post"]
    assert method in operation["description"]
    assert f"/v1/models/{name}:explain-image" not in response.json()["paths"]


@pytest.mark.parametrize(
    ("name", "instance", "section"),
    [
        ("mixed-ct", TABLE_ROW, "named features of mixed types"),
        ("words-tfidf", "a great film", "Raw text, given to the model as is"),
    ],
)
def test_predict_explain_and_report_of_each_kind(
    client: Any, name: str, instance: Any, section: str
) -> None:
    predicted = client.post(f"/v1/models/{name}:predict", json={"instances": [instance]})
    assert predicted.status_code == 200, predicted.text
    label = predicted.json()["predictions"][0]["label"]
    explained = client.post(f"/v1/models/{name}:explain", json={"instances": [instance]})
    assert explained.status_code == 200, explained.text
    explanation = explained.json()["explanations"][0]
    assert explanation["label"] == explanation["explained_label"] == label
    assert explanation["attributions"]
    page = client.get(f"/v1/models/{name}/versions/1/report")
    assert page.status_code == 200
    assert section in page.text
