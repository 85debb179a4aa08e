"""Models users bring: imported with `save_model` / `synergy import`, served by one real
server, answering V1 and V2 (JSON and binary) exactly as the model does in-process."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.kinds.base import DEFAULT_PROBABILITY_FLOOR, bound_probabilities
from tests.conftest import ROOT
from tests.e2e.conftest import Server, start_server
from training.importing import save_model

pytestmark = pytest.mark.slow

IMDB = ROOT.parent / "shared" / "data" / "aclImdb_train.tar.gz"
TOLERANCE = 1e-4  # float32 on the wire


@dataclass
class Imported:
    name: str
    model: Any
    x: Any  # what the model takes in-process
    instances: list[Any]  # the same rows as a client sends them
    classifier: bool
    labels: list[str] | None = None  # given at import (a Keras classifier's)


def _imdb(count: int) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    with tarfile.open(IMDB, "r:gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[2] in ("pos", "neg"):
                if labels.count(parts[2]) >= count // 2:
                    if len(labels) >= count:
                        break
                    continue
                handle = archive.extractfile(member)
                assert handle is not None
                texts.append(handle.read().decode("utf-8"))
                labels.append(parts[2])
    return texts, labels


def _models() -> list[tuple[Imported, tuple[Any, Any] | None]]:
    made: list[tuple[Imported, tuple[Any, Any] | None]] = []
    x, y = load_wine(return_X_y=True)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(x[::2], y[::2])
    made.append((Imported("wine-rf", rf, x[1:6:2], x[1:6:2].tolist(), True), (x[1::2], y[1::2])))
    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        frame[:400], target[:400]
    )
    rows = frame[400:403]
    made.append(
        (
            Imported("cancer-lr", pipe, rows, rows.to_numpy().tolist(), True),
            (frame[400:], target[400:].to_numpy()),
        )
    )
    frame, target = load_diabetes(return_X_y=True, as_frame=True)
    gbr = GradientBoostingRegressor(n_estimators=30, random_state=0).fit(frame[:350], target[:350])
    rows = frame[350:353]
    made.append(
        (
            Imported("diabetes-gbr", gbr, rows, rows.to_dict(orient="records"), False),
            (frame[350:], target[350:].to_numpy()),
        )
    )
    both = np.c_[target, target / 10]
    multi = MultiOutputRegressor(Ridge()).fit(frame.to_numpy()[:350], both[:350])
    arr = frame.to_numpy()[350:352]
    made.append(
        (
            Imported("diabetes-multi", multi, arr, arr.tolist(), False),
            (frame.to_numpy()[350:], both[350:]),
        )
    )
    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame(
        {
            "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 80, n).astype(float)),
            "city": [
                np.nan if gap else city
                for gap, city in zip(
                    rng.random(n) < 0.1, rng.choice(["paris", "lyon", "nice"], n), strict=True
                )
            ],
            "member": rng.random(n) < 0.5,
        }
    )
    label = np.where((table["city"] == "paris") | (table["age"].fillna(40) > 60), "yes", "no")
    ct = make_pipeline(
        ColumnTransformer(
            [
                ("num", SimpleImputer(), ["age"]),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["city"],
                ),
                ("flag", "passthrough", ["member"]),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(table[:150], label[:150])
    rows = table[150:156]
    instances = [
        {
            k: (None if isinstance(v, float) and np.isnan(v) else (bool(v) if k == "member" else v))
            for k, v in r.items()
        }
        for r in rows.to_dict(orient="records")
    ]
    made.append((Imported("mixed-ct", ct, rows, instances, True), (table[150:], label[150:])))
    made.extend(_keras_models())
    texts, sentiments = _imdb(160)
    tfidf = make_pipeline(TfidfVectorizer(max_features=3000), LogisticRegression(max_iter=500)).fit(
        texts[:120], sentiments[:120]
    )
    made.append(
        (
            Imported("imdb-tfidf", tfidf, texts[120:123], texts[120:123], True),
            (texts[120:], sentiments[120:]),
        )
    )
    return made


def _keras_models() -> list[tuple[Imported, tuple[Any, Any] | None]]:
    import keras

    keras.utils.set_random_seed(0)
    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    regressor = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    regressor.compile(optimizer="adam", loss="mse")
    regressor.fit(x[:300], y[:300], epochs=2, verbose=0)
    classes = np.digitize(y, [100, 200])
    classifier = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    classifier.fit(x[:300], classes[:300], epochs=2, verbose=0)
    rows = x[300:303]
    return [
        (Imported("diabetes-keras", regressor, rows, rows.tolist(), False), (x[300:], y[300:])),
        (
            Imported(
                "diabetes-keras-cls", classifier, rows, rows.tolist(), True, ["low", "mid", "high"]
            ),
            (x[300:], classes[300:]),
        ),
    ]


def _in_process(item: Imported) -> np.ndarray:
    """The model's own outputs, in the form the server serves them: a classifier's
    probabilities bounded away from 0 and 1 (docs/warnings.md)."""
    if item.labels is not None or not hasattr(item.model, "get_params"):  # Keras
        outputs = np.asarray(item.model.predict(item.x, verbose=0), dtype=np.float64).reshape(
            len(item.instances), -1
        )
    elif item.classifier:
        outputs = np.asarray(item.model.predict_proba(item.x))
    else:
        return np.asarray(item.model.predict(item.x)).reshape(len(item.instances), -1)
    if not item.classifier:
        return outputs
    if outputs.shape[1] == 1:  # a sigmoid's one column, served as two
        outputs = np.hstack([1.0 - outputs, outputs])
    return bound_probabilities(outputs, DEFAULT_PROBABILITY_FLOOR)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, list[Imported], Path, dict[str, float]]]:
    root = tmp_path_factory.mktemp("own")
    models = root / "models"
    items, seconds = [], {}
    for item, evaluation in _models():
        result = save_model(
            item.model,
            item.name,
            example=item.x,
            eval=evaluation,
            labels=item.labels,
            models_dir=models,
        )
        seconds[item.name] = result.seconds
        items.append(item)
    server = start_server(root / "server.log", models, SYNERGY_MODEL_POLL_S="0.5")
    yield server, items, models, seconds
    server.stop()


def _v1(server: Server, item: Imported) -> np.ndarray:
    answer = httpx.post(
        f"{server.url}/v1/models/{item.name}:predict",
        json={"instances": item.instances},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    if item.classifier:
        return np.array([list(p["probabilities"].values()) for p in predictions])
    return np.array(
        [[p["value"]] if "value" in p else list(p["values"].values()) for p in predictions]
    )


def _v2_inputs(server: Server, item: Imported) -> list[dict[str, Any]]:
    """The V2 inputs of the item's instances, built from the metadata as a V2 client does."""
    metadata = httpx.get(f"{server.url}/v2/models/{item.name}", timeout=10).json()
    specs = metadata["inputs"]
    if len(specs) > 1:  # one tensor per feature (a table): numbers as FP64, as pandas has them
        return [
            {
                "name": spec["name"],
                "datatype": "FP64" if spec["datatype"] == "FP32" else spec["datatype"],
                "shape": [len(item.instances)],
                "data": [instance[spec["name"]] for instance in item.instances],
            }
            for spec in specs
        ]
    spec = specs[0]
    if spec["datatype"] == "BYTES":
        data = [json.dumps(i) if isinstance(i, dict) else i for i in item.instances]
        return [{"name": spec["name"], "datatype": "BYTES", "shape": [len(data)], "data": data}]
    rows = [list(i.values()) if isinstance(i, dict) else i for i in item.instances]
    return [
        {
            "name": spec["name"],
            "datatype": "FP32",
            "shape": [len(rows), len(rows[0])],
            "data": rows,
        }
    ]


def test_every_imported_model_answers_v1_and_v2_as_in_process(served: Any) -> None:
    server, items, _, _ = served
    for item in items:
        expected = _in_process(item)
        scale = 1.0 if item.classifier else np.maximum(1.0, np.abs(expected))
        np.testing.assert_array_less(
            np.abs(_v1(server, item) - expected) / scale, TOLERANCE, err_msg=item.name
        )
        body = {"inputs": _v2_inputs(server, item)}
        answer = httpx.post(f"{server.url}/v2/models/{item.name}/infer", json=body, timeout=30)
        assert answer.status_code == 200, (item.name, answer.text)
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        if item.classifier:
            got = np.array(outputs["probabilities"]["data"]).reshape(expected.shape)
            labels = item.labels or [str(c) for c in item.model.classes_]
            assert outputs["label"]["data"] == [labels[i] for i in expected.argmax(axis=1)]
        else:
            got = np.array(outputs["predict"]["data"]).reshape(expected.shape)
            if expected.shape[1] > 1:  # one output per target too
                np.testing.assert_allclose(
                    outputs["target_1"]["data"], expected[:, 1], rtol=TOLERANCE
                )
        np.testing.assert_array_less(np.abs(got - expected) / scale, TOLERANCE, err_msg=item.name)


def test_binary_v2_outputs_match_json(served: Any) -> None:
    server, items, _, _ = served
    for item in items:
        name = "probabilities" if item.classifier else "predict"
        body = json.dumps(
            {
                "inputs": _v2_inputs(server, item),
                "outputs": [{"name": name, "parameters": {"binary_data": True}}],
            }
        ).encode()
        answer = httpx.post(f"{server.url}/v2/models/{item.name}/infer", content=body, timeout=30)
        assert answer.status_code == 200, answer.text
        header_length = int(answer.headers["inference-header-content-length"])
        values = np.frombuffer(answer.content[header_length:], dtype="<f4")
        np.testing.assert_allclose(
            values.reshape(_in_process(item).shape) if item.classifier else values,
            _in_process(item).reshape(values.shape) if not item.classifier else _in_process(item),
            rtol=1e-4,
            atol=1e-5,
        )


def test_v2_metadata_has_the_real_inputs_and_task_outputs(served: Any) -> None:
    server, _, _, _ = served
    wine = httpx.get(f"{server.url}/v2/models/wine-rf", timeout=10).json()
    assert wine["inputs"][0]["shape"] == [-1, 13]
    # The task's outputs, then every version's `warnings` (docs/warnings.md).
    assert [o["name"] for o in wine["outputs"]] == ["label", "probabilities", "warnings"]
    gbr = httpx.get(f"{server.url}/v2/models/diabetes-gbr", timeout=10).json()
    assert "age" in gbr["inputs"][0]["parameters"]["description"]
    assert [o["name"] for o in gbr["outputs"]] == ["predict", "warnings"]
    multi = httpx.get(f"{server.url}/v2/models/diabetes-multi", timeout=10).json()
    assert [o["name"] for o in multi["outputs"]] == [
        "predict",
        "target_0",
        "target_1",
        "warnings",
    ]
    mixed = httpx.get(f"{server.url}/v2/models/mixed-ct", timeout=10).json()
    # One input per feature (docs/v2.md); the JSON-object input `rows` is taken too.
    assert [(i["name"], i["datatype"], i["shape"]) for i in mixed["inputs"]] == [
        ("age", "FP32", [-1]),
        ("city", "BYTES", [-1]),
        ("member", "BOOL", [-1]),
    ]
    assert mixed["inputs"][1]["parameters"]["nullable"] is True


def test_cards_record_the_inferred_schema_and_evaluation(served: Any) -> None:
    server, _, _, _ = served
    card = httpx.get(f"{server.url}/v1/models/mixed-ct", timeout=10).json()["card"]
    features = {f["name"]: f for f in card["input"]["features"]}
    assert card["input"]["kind"] == "table"
    assert features["city"]["dtype"] == "string" and features["city"]["missing"]
    assert features["member"]["dtype"] == "boolean"
    assert card["calibration"]["ece_after"] >= 0 and card["errors_file"] == "errors.json"
    gbr = httpx.get(f"{server.url}/v1/models/diabetes-gbr", timeout=10).json()["card"]
    assert gbr["task"] == "regression" and set(gbr["metrics"]) >= {"mae", "rmse", "r2"}
    assert gbr["library_versions"]["scikit-learn"] and gbr["imported"]["serialization"] == "skops"


def test_a_bad_mixed_instance_is_a_clear_422(served: Any) -> None:
    server, _, _, _ = served
    answer = httpx.post(
        f"{server.url}/v1/models/mixed-ct:predict",
        json={"instances": [{"age": 30, "city": 3, "member": True}]},
        timeout=10,
    )
    assert answer.status_code == 422 and "city" in answer.json()["error"]
    answer = httpx.post(
        f"{server.url}/v1/models/mixed-ct:predict",
        json={"instances": [{"age": 30, "city": "paris", "member": None}]},
        timeout=10,
    )
    assert answer.status_code == 422 and "member" in answer.json()["error"]


def _wait_state(server: Server, name: str, version: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = httpx.get(f"{server.url}/v1/models", timeout=10).json()
        for model in answer["models"]:
            if model["name"] == name:
                for status in model["versions"]:
                    if status["version"] == version and status["state"] in ("ready", "failed"):
                        return dict(status)
        time.sleep(0.3)
    raise TimeoutError(f"{name}/{version} never settled")


def test_the_cli_imports_a_new_version_that_the_live_server_serves(
    served: Any, tmp_path: Path
) -> None:
    server, _, models, _ = served
    x, y = load_wine(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    sio.dump(model, tmp_path / "model.skops")
    x[:5].to_csv(tmp_path / "example.csv", index=False)
    x.assign(cultivar=y)[100:].to_csv(tmp_path / "eval.csv", index=False)
    command = [
        sys.executable,
        "-m",
        "training.importing.cli",
        "import",
        str(tmp_path / "model.skops"),
        "--name",
        "wine-rf",
        "--example",
        str(tmp_path / "example.csv"),
        "--eval",
        str(tmp_path / "eval.csv"),
        "--target",
        "cultivar",
        "--models-dir",
        str(models),
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "imported wine-rf version 2" in done.stdout
    assert _wait_state(server, "wine-rf", 2)["state"] == "ready"
    answer = httpx.post(
        f"{server.url}/v1/models/wine-rf/versions/2:predict",
        json={"instances": x[:2].to_dict(orient="records")},
        timeout=10,
    )
    expected = bound_probabilities(model.predict_proba(x[:2]), DEFAULT_PROBABILITY_FLOOR)
    got = np.array([list(p["probabilities"].values()) for p in answer.json()["predictions"]])
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)


def _copy_version(models: Path, name: str, to: int, change: Any) -> None:
    source = models / name / "1"
    staging = models / name / f".{to}.tmp"
    staging.mkdir()
    for path in source.iterdir():
        (staging / path.name).write_bytes(path.read_bytes())
    card = json.loads((staging / "card.json").read_text())
    change(card)
    card["version"] = to
    (staging / "card.json").write_text(json.dumps(card))
    staging.rename(models / name / str(to))


def test_a_different_recorded_library_version_fails_the_version_naming_both(served: Any) -> None:
    server, _, models, _ = served

    def older(card: dict[str, Any]) -> None:
        card["library_versions"]["scikit-learn"] = "1.2.0"

    _copy_version(models, "diabetes-gbr", 7, older)
    status = _wait_state(server, "diabetes-gbr", 7)
    assert status["state"] == "failed"
    assert (
        "scikit-learn 1.2.0" in status["reason"]
        and "SYNERGY_ALLOW_LIBRARY_VERSION_MISMATCH" in status["reason"]
    )


def test_a_version_whose_replay_disagrees_is_not_served(served: Any) -> None:
    server, _, models, _ = served

    def skewed(card: dict[str, Any]) -> None:
        card["examples"][0]["prediction"] = [card["examples"][0]["prediction"][0] + 50]

    _copy_version(models, "diabetes-gbr", 8, skewed)
    status = _wait_state(server, "diabetes-gbr", 8)
    assert status["state"] == "failed" and "does not reproduce the predictions" in status["reason"]


def test_every_imported_model_is_explained_and_has_a_report(served: Any) -> None:
    server, items, _, _ = served
    for item in items:
        answer = httpx.post(
            f"{server.url}/v1/models/{item.name}:explain",
            json={"instances": item.instances[:1]},
            timeout=60,
        )
        assert answer.status_code == 200, (item.name, answer.text)
        explanation = answer.json()["explanations"][0]
        assert explanation["attributions"], item.name
        gap = explanation["completeness"]
        assert gap["error"] <= gap["tolerance"], (item.name, gap)
        report = httpx.get(f"{server.url}/v1/models/{item.name}/report", timeout=60)
        assert report.status_code == 200, (item.name, report.text[:300])
        if not item.classifier:
            assert "Residual" in report.text and "MAE" in report.text
        else:
            assert "Confusion matrix" in report.text


def test_every_imported_model_gets_feedback_and_live_metrics(served: Any) -> None:
    server, items, _, _ = served
    for item in items:
        answer = httpx.post(
            f"{server.url}/v1/models/{item.name}:predict",
            json={"instances": item.instances[:2]},
            timeout=30,
        )
        request_id = answer.headers["x-request-id"]
        predictions = answer.json()["predictions"]
        if item.classifier:
            truths: list[Any] = [p["label"] for p in predictions]  # both right
        else:  # each prediction off by exactly 1 in every target
            truths = [
                p["value"] + 1.0 if "value" in p else [v + 1.0 for v in p["values"].values()]
                for p in predictions
            ]
        feedback = httpx.post(
            f"{server.url}/v1/models/{item.name}:feedback",
            json={"request_id": request_id, "labels": truths},
            timeout=10,
        )
        assert feedback.status_code == 200, (item.name, feedback.text)
        monitoring = httpx.get(f"{server.url}/v1/models/{item.name}/monitoring", timeout=30)
        assert monitoring.status_code == 200, (item.name, monitoring.text)
        served_version = answer.json()["version"]
        version = next(v for v in monitoring.json()["versions"] if v["version"] == served_version)
        assert version["rows_with_feedback"] >= 2, (item.name, version)
        assert version["drift"]["profile"], item.name
        if item.classifier:
            assert version["accuracy"]["all_time"]["accuracy"] == 1.0, (item.name, version)
        else:
            live = version["regression"]
            assert live["rows"] == 2 and live["held_out"] is not None
            assert live["mae"] == pytest.approx(1.0, abs=1e-3), (item.name, live)
            assert live["rmse"] == pytest.approx(1.0, abs=1e-3)


def test_a_regressor_refuses_a_label_as_feedback(served: Any) -> None:
    server, _, _, _ = served
    answer = httpx.post(
        f"{server.url}/v1/models/diabetes-gbr:predict",
        json={"instances": [[0.0] * 10]},
        timeout=30,
    )
    feedback = httpx.post(
        f"{server.url}/v1/models/diabetes-gbr:feedback",
        json={"request_id": answer.headers["x-request-id"], "labels": ["high"]},
        timeout=10,
    )
    assert feedback.status_code == 422 and "regressor" in feedback.json()["error"]


def test_drift_covers_categorical_features(served: Any) -> None:
    server, _, _, _ = served
    rows = [{"age": 30.0, "city": "nice", "member": True}] * 3
    for index in range(40):  # distinct rows, all in one city: drift on "city"
        rows = [{"age": 20.0 + index, "city": "nice", "member": bool(index % 2)}]
        httpx.post(
            f"{server.url}/v1/models/mixed-ct:predict", json={"instances": rows}, timeout=30
        ).raise_for_status()
    time.sleep(1.5)  # the store's writer flushes in the background
    monitoring = httpx.get(f"{server.url}/v1/models/mixed-ct/monitoring", timeout=30).json()
    statistics = {s["statistic"]: s for s in monitoring["versions"][0]["drift"]["statistics"]}
    assert statistics["city"]["kind"] == "categorical", monitoring
    assert statistics["city"]["flag"], statistics["city"]
    assert statistics["age"]["kind"] == "continuous"


def test_import_times(served: Any) -> None:
    _, _, _, seconds = served
    print("\nimport seconds:", json.dumps(seconds))
    assert all(s > 0 for s in seconds.values())
