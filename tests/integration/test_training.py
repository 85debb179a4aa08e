"""The training pipeline: each trainer end to end on real data slices, and the CLI's errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.kinds import make_adapter, predict_request_model
from app.runtimes import load_model
from app.schemas.card import ModelCard, verify_artifacts
from tests.conftest import MODEL_NAMES, ROOT


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_trainer_writes_a_valid_carded_artifact(tiny_models_dir: Path, name: str) -> None:
    folder = tiny_models_dir / name / "1"
    card = ModelCard.read(folder)  # validates against the shared schema
    assert card.name == name and card.version == 1
    assert verify_artifacts(card, folder) == []
    assert {p.name for p in folder.iterdir()} == {*card.artifacts, "card.json"}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temp left over"
    # Readable by other users (a container's non-root service user), not private like a tempdir.
    assert folder.stat().st_mode & 0o005 == 0o005
    metrics = card.classification_metrics()
    assert metrics.test_size == sum(sum(row) for row in metrics.confusion_matrix)
    assert card.library_versions["python"].startswith("3.")
    assert card.examples and all(e.probabilities for e in card.examples)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_reloaded_model_predicts_what_the_trained_one_did(tiny_models_dir: Path, name: str) -> None:
    """Reload through the serving runtime and preprocessing; the probabilities recorded from
    the in-memory model right after training must come back."""
    folder = tiny_models_dir / name / "1"
    card = ModelCard.read(folder)
    model = load_model(card, folder, buckets=(1, 4))
    adapter = make_adapter(card, folder, max_image_pixels=10_000_000)
    request = predict_request_model(card, max_instances=10, max_text_chars=50_000, examples=[])
    instances = request.model_validate({"instances": [e.instance for e in card.examples]}).instances  # type: ignore[attr-defined]
    predicted = model.predict(adapter.featurize([adapter.to_row(i) for i in instances]))
    expected = [e.probabilities or [] for e in card.examples]
    np.testing.assert_allclose(predicted, expected, atol=1e-5)


def _cli(*args: str, cwd: Path, path_first: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the training CLI; `path_first` is put before the project on the import path."""
    python_path = [str(path_first)] if path_first else []
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=300,
        env={"PYTHONPATH": ":".join([*python_path, str(ROOT)]), "PATH": "/usr/bin:/bin"},
    )


def _fake_package(folder: Path, name: str, body: str) -> Path:
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(body)
    return folder


# What native libraries print while they load varies by CPU and build; this stands in for any
# of it (absl, oneDNN, CPU-feature notices), written to the descriptor as C code does.
NOISY_IMPORT = """
import os
os.write(2, b"I0000 port.cc:153] a native start-up notice\\nWARNING: absl pre-init line\\n")
"""


def test_backend_import_drops_what_native_code_prints_while_loading(tmp_path: Path) -> None:
    fakes = _fake_package(tmp_path / "fakes", "tensorflow", NOISY_IMPORT)
    _fake_package(fakes, "keras", NOISY_IMPORT)
    script = (
        "import sys; from training.backend import import_training_backend; "
        "import_training_backend(); print('error: only this', file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=60,
        env={"PYTHONPATH": f"{fakes}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "error: only this\n"


def test_cli_says_in_one_line_what_to_install_when_the_backend_is_missing(tmp_path: Path) -> None:
    fakes = _fake_package(
        tmp_path / "fakes", "tensorflow", "raise ModuleNotFoundError(name='tensorflow')"
    )
    result = _cli("mnist-cnn", cwd=tmp_path, path_first=fakes)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "training needs tensorflow" in result.stderr and "make install-train" in result.stderr
    # The exact command for the project's .venv, pinned by the lock file.
    assert ".venv/bin/python -m pip install -r requirements/train.lock" in result.stderr


def test_scikit_learn_models_train_without_tensorflow_keras_or_jax(tmp_path: Path) -> None:
    fakes = tmp_path / "fakes"
    for name in ("tensorflow", "keras", "jax"):
        _fake_package(fakes, name, f"raise ModuleNotFoundError(name={name!r})")
    result = _cli(
        "iris-knn", "--out", str(tmp_path / "models"), "--quiet", cwd=tmp_path, path_first=fakes
    )
    assert result.returncode == 0, result.stderr
    assert "iris-knn v1: test accuracy" in result.stdout
    assert (tmp_path / "models" / "iris-knn" / "1" / "card.json").is_file()


def test_the_training_lock_pins_tensorflow_on_top_of_the_runtime_set() -> None:
    lines = (ROOT / "requirements" / "train.lock").read_text().splitlines()
    assert "-r runtime.lock" in lines
    pins = dict(line.split("==") for line in lines if "==" in line)
    dev = dict(
        line.split("==")
        for line in (ROOT / "requirements" / "dev.lock").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    )
    assert "tensorflow-cpu" in pins
    assert {name: dev.get(name) for name in pins} == pins  # the same versions as the dev set


def test_cli_trains_into_the_next_version_and_prints_a_summary(tmp_path: Path) -> None:
    result = _cli("iris-knn", "--out", str(tmp_path / "models"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "iris-knn v1: test accuracy" in result.stdout
    assert "cross-validating" in result.stderr  # the progress display
    # A new version serves with warnings: training calibrated them (training.ood).
    assert "iris-knn: out-of-domain warnings calibrated" in result.stdout
    card = ModelCard.read(tmp_path / "models" / "iris-knn" / "1")
    assert card.out_of_domain is not None and card.out_of_domain.feature_low is not None
    again = _cli("iris-knn", "--out", str(tmp_path / "models"), "--quiet", cwd=tmp_path)
    assert again.returncode == 0 and "iris-knn v2" in again.stdout
    skipped = _cli("iris-knn", "--out", str(tmp_path / "other"), "--skip-ood", cwd=tmp_path)
    assert "not calibrated (--skip-ood)" in skipped.stdout
    assert ModelCard.read(tmp_path / "other" / "iris-knn" / "1").out_of_domain is None
    assert sorted(p.name for p in (tmp_path / "models" / "iris-knn").iterdir()) == ["1", "2"]
    exists = _cli("iris-knn", "--out", str(tmp_path / "models"), "--version", "1", cwd=tmp_path)
    assert exists.returncode == 2 and "already exists" in exists.stderr


@pytest.mark.parametrize(
    ("model", "layout", "expected"),
    [
        ("mnist-cnn", {}, "mnist.npz not found"),
        ("mnist-cnn", {"mnist.npz": b"not an npz"}, "not a readable MNIST archive"),
        ("imdb-sentiment", {"README": b"hello"}, "no IMDb data"),
        ("imdb-sentiment", {"aclImdb_train.tar.gz": b"\x1f\x8b garbage"}, "not a readable aclImdb"),
    ],
)
def test_cli_data_errors_are_one_line_and_leave_nothing_behind(
    tmp_path: Path, model: str, layout: dict[str, bytes], expected: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for filename, content in layout.items():
        (data / filename).write_bytes(content)
    out = tmp_path / "models"
    result = _cli(model, "--data-dir", str(data), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists() or list(out.rglob("*")) == [], "something was left in models/"


def test_cli_refuses_unknown_models_and_missing_data_dirs(tmp_path: Path) -> None:
    unknown = _cli("resnet", cwd=tmp_path)
    assert unknown.returncode == 2 and "invalid choice: 'resnet'" in unknown.stderr
    missing = _cli("mnist-cnn", "--data-dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
