"""Importing a user's model refuses what carries code, and runs none of it."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from training.importing import ImportRefused, import_file, save_model
from training.importing.safety import check_keras_config


class _Payload:
    """A pickle whose loading would create a file (the classic os.system gadget)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def wine() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_wine(return_X_y=True)
    return x, y


def _nothing_written(models: Path, name: str) -> bool:
    folder = models / name
    return not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize("trust", [False, True])
def test_a_malicious_pickle_is_refused_and_nothing_in_it_runs(tmp_path: Path, trust: bool) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ImportRefused) as refused:
        import_file(evil, "evil", trust_pickle=trust, models_dir=tmp_path / "models")
    message = str(refused.value)
    if trust:  # scanned, and the scan names what it found
        assert "carries code" in message and "system" in message
    else:
        assert "--trust-pickle" in message and "skops" in message
    assert not marker.exists()
    assert _nothing_written(tmp_path / "models", "evil")


def test_a_trusted_clean_joblib_is_scanned_and_the_scan_is_in_the_card(
    tmp_path: Path, wine: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = wine
    path = tmp_path / "model.joblib"
    joblib.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y), path)
    result = import_file(path, "tree", trust_pickle=True, models_dir=tmp_path / "models")
    record = result.card.imported
    assert record is not None and record.trusted_pickle and record.source_format == "joblib"
    assert record.scan is not None and record.scan["verdict"] == "clean"
    assert record.scan["scanner"] == "picklescan"
    # What the server reads is the skops copy, never the pickle.
    assert result.card.model_file == "model.skops"
    assert sorted(p.name for p in result.folder.iterdir()) == ["card.json", "model.skops"]


def test_an_unfitted_estimator_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    sio.dump(LogisticRegression(), path)
    with pytest.raises(ImportRefused, match="not fitted"):
        import_file(path, "unfitted", models_dir=tmp_path / "models")
    with pytest.raises(ImportRefused, match="not fitted"):
        save_model(LogisticRegression(), "unfitted", models_dir=tmp_path / "models")
    assert _nothing_written(tmp_path / "models", "unfitted")


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("notes.txt", b"hello", "not a model file"),
        ("model.skops", b"not a zip at all", "not a skops file"),
        ("model.keras", b"PK not really", "not a .keras model file"),
        ("model.h5", b"\x89HDF", "safe mode"),
    ],
)
def test_a_file_that_is_not_a_model_is_refused(
    tmp_path: Path, filename: str, content: bytes, expected: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(ImportRefused, match=expected):
        import_file(path, "junk", models_dir=tmp_path / "models")
    assert _nothing_written(tmp_path / "models", "junk")


def test_a_trusted_pickle_holding_no_estimator_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ImportRefused):
        import_file(path, "junk", trust_pickle=True, models_dir=tmp_path / "models")


def _keras_file(path: Path, layers: list[dict[str, object]]) -> Path:
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "m", "layers": layers},
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")
    return path


def test_a_keras_file_with_a_lambda_layer_is_refused_before_keras_reads_it(
    tmp_path: Path,
) -> None:
    path = _keras_file(
        tmp_path / "model.keras",
        [{"module": "keras.layers", "class_name": "Lambda", "config": {"function": "..."}}],
    )
    with pytest.raises(ImportRefused, match="Lambda layer"):
        import_file(path, "lambda", models_dir=tmp_path / "models")
    assert _nothing_written(tmp_path / "models", "lambda")


def test_a_keras_class_from_outside_keras_is_refused_unless_trusted() -> None:
    config = {
        "class_name": "Sequential",
        "config": {"layers": [{"module": "evil", "class_name": "X"}]},
    }
    with pytest.raises(ImportRefused, match=r"evil\.X"):
        check_keras_config(config)
    check_keras_config(config, trust=True)


def _double(x: np.ndarray) -> np.ndarray:
    return x * 2


def test_a_skops_file_with_a_type_outside_the_trust_list_is_refused(
    tmp_path: Path, wine: tuple[np.ndarray, np.ndarray]
) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "model.skops"
    x, y = wine
    sio.dump(make_pipeline(FunctionTransformer(_double), LogisticRegression()).fit(x, y), path)
    with pytest.raises(ImportRefused, match=r"trust list: .*_double"):
        import_file(path, "func", models_dir=tmp_path / "models")


def test_one_importer_per_framework_each_file_suffix_read_by_one() -> None:
    from app.runtimes import RUNTIMES
    from training.importing.frameworks import IMPORTERS, importer_for

    assert {importer.framework for importer in IMPORTERS} == set(RUNTIMES)
    suffixes = [suffix for importer in IMPORTERS for suffix in importer.suffixes]
    assert len(suffixes) == len(set(suffixes))
    # Not a Keras model: the scikit-learn importer, whose prepare() refuses what is not fitted.
    assert importer_for(object()).framework == "sklearn"


def test_a_model_no_runtime_serves_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An importer plug-in without a runtime (its card would never load) is refused up front,
    in the runtimes table's words."""
    from training.importing import frameworks
    from training.importing.sklearn_model import SklearnImporter

    class OrphanImporter(SklearnImporter):
        framework = "onnx"

        def claims(self, model: object) -> bool:
            return True

    monkeypatch.setattr(frameworks, "IMPORTERS", (OrphanImporter(), *frameworks.IMPORTERS))
    with pytest.raises(ImportRefused, match=r"no runtime serves framework 'onnx'.*keras, sklearn"):
        save_model(object(), "orphan", example=[[1.0]], models_dir=tmp_path / "models")
    assert not (tmp_path / "models").exists()
