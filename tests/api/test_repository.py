"""What the models dir may contain: odd entries fail alone, every file read is a regular file
inside it, readiness and errors say what is wrong without paths or library internals, and a
version policy bounds what one model costs."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from app.repository import ModelEntry, ModelRegistry, VersionPolicy
from app.schemas.card import sha256_file
from tests.conftest import running_app

# What must never reach a client: absolute paths, exception reprs, library internals.
LEAKS = ("/tmp", "/work", "/home", str(Path.home()), "Errno", "b'", "<class", "Traceback")


def _scan(models_dir: Path) -> tuple[ModelEntry, ...]:
    """The versions a first scan finds (no loading)."""
    return ModelRegistry.scan(models_dir, VersionPolicy()).entries


def _iris_only(models_copy: Path) -> Path:
    for folder in models_copy.iterdir():
        if folder.name != "iris-knn":
            shutil.rmtree(folder)
    return models_copy


def _states(client: Any) -> dict[tuple[str, int], dict[str, Any]]:
    body = client.get("/health/ready").json()
    return {(m["name"], m["version"]): m for m in body["models"]}


def _assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, (leak, text)


def test_an_unreadable_entry_fails_alone_and_the_rest_serve(
    models_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on every ext4 volume: lost+found, mode 000 (root could still read it, so the
    # listing is refused here the way the kernel refuses it to the server's user).
    unreadable = {models_copy / "lost+found", models_copy / "secret-model"}
    for folder in unreadable:
        folder.mkdir(mode=0)
    original = Path.iterdir

    def iterdir(self: Path) -> Any:
        if self in unreadable:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    entries = {(e.name, e.state.value, e.reason) for e in _scan(models_copy)}
    assert (
        "secret-model",
        "failed",
        "the model folder secret-model/ cannot be read (permission denied)",
    ) in entries
    assert {name for name, _, _ in entries} == {
        "binary-mlp", "imdb-sentiment", "iris-knn", "mnist-cnn", "secret-model"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("symlink outside", "card.json links outside the models dir"),
        ("fifo", "card.json is not a regular file"),
        ("folder", "card.json is not a regular file"),
    ],
)
def test_card_json_must_be_a_regular_file_inside_the_models_dir(
    models_copy: Path, tmp_path: Path, damage: str, reason: str
) -> None:
    card = models_copy / "iris-knn" / "1" / "card.json"
    outside = tmp_path / "outside.json"
    outside.write_bytes(card.read_bytes())
    card.unlink()
    if damage == "symlink outside":
        card.symlink_to(outside)
    elif damage == "fifo":
        os.mkfifo(card)
    else:
        card.mkdir()
    found: list[Any] = []
    reader = threading.Thread(target=lambda: found.extend(_scan(models_copy)), daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "discovery hangs on the card"
    (iris,) = [e for e in found if e.name == "iris-knn"]
    assert iris.state.value == "failed" and iris.card is None
    assert iris.reason is not None and reason in iris.reason
    _assert_no_leak(iris.reason)
    assert [e.name for e in found if e.state.value == "failed"] == ["iris-knn"]


def test_readiness_and_errors_name_the_file_and_the_problem_not_paths_or_internals(
    models_copy: Path,
) -> None:
    iris = models_copy / "iris-knn" / "1"
    (iris / "model.joblib").write_bytes(b"garbage-not-a-pickle")
    card = json.loads((iris / "card.json").read_text())
    card["artifacts"]["model.joblib"] = sha256_file(iris / "model.joblib")
    (iris / "card.json").write_text(json.dumps(card))
    mlp_card = models_copy / "binary-mlp" / "1" / "card.json"
    mlp_card.unlink()
    mlp_card.mkdir()  # read() of a folder: an OS error whose text carries the path
    with running_app(models_copy, expect_ready=False, api_keys=["k"]) as client:
        ready = client.get("/health/ready")  # open without a key
        assert ready.status_code == 503
        _assert_no_leak(ready.text)
        states = _states(client)
        assert "model.joblib" in states["iris-knn", 1]["reason"]
        assert "could not load" in states["iris-knn", 1]["reason"]
        assert "card.json is not a regular file" in states["binary-mlp", 1]["reason"]
        response = client.post(
            "/v1/models/iris-knn:predict",
            json={"instances": [[1, 2, 3, 4]]},
            headers={"Authorization": "Bearer k"},
        )
        assert response.status_code == 503
        _assert_no_leak(response.text)


def _versions_of_iris(models_dir: Path, versions: range) -> None:
    source = models_dir / "iris-knn" / "1"
    for version in versions:
        target = models_dir / "iris-knn" / str(version)
        if version != 1:
            shutil.copytree(source, target)
        card = json.loads((target / "card.json").read_text())
        card["version"] = version
        (target / "card.json").write_text(json.dumps(card))


def test_only_the_latest_versions_load_and_the_rest_answer_404(models_copy: Path) -> None:
    models = _iris_only(models_copy)
    _versions_of_iris(models, range(1, 51))
    with running_app(models, max_versions_per_model=2) as client:
        assert set(_states(client)) == {("iris-knn", 49), ("iris-knn", 50)}
        listing = client.get("/v1/models").json()["models"][0]
        assert [v["version"] for v in listing["versions"]] == [49, 50]
        response = client.get("/v1/models/iris-knn/versions/3")
        assert response.status_code == 404
        assert "served versions: 49, 50" in response.json()["error"]
        assert "latest 2" in response.json()["error"]
        old = client.post(
            "/v1/models/iris-knn/versions/3:predict", json={"instances": [[1, 2, 3, 4]]}
        )
        assert old.status_code == 404
        assert (
            client.post(
                "/v1/models/iris-knn/versions/49:predict", json={"instances": [[1, 2, 3, 4]]}
            ).status_code
            == 200
        )
        series = [
            line
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("synergy_model_ready{")
        ]
        assert len(series) == 2, series


def test_thousands_of_empty_version_folders_do_not_keep_the_server_not_ready(
    models_copy: Path,
) -> None:
    models = _iris_only(models_copy)
    for version in range(2, 2002):
        (models / "iris-knn" / str(version)).mkdir()
    with running_app(models) as client:  # asserts ready
        assert set(_states(client)) == {("iris-knn", 1)}


def test_the_version_policy_picks_the_highest_versions() -> None:
    assert VersionPolicy(num_versions=2).select([3, 10, 1, 7]) == [7, 10]
    assert VersionPolicy(num_versions=5).select([2, 1]) == [1, 2]


def test_an_artifact_that_is_a_fifo_is_refused_without_hanging(models_copy: Path) -> None:
    from app.schemas.card import ModelCard, verify_artifacts

    folder = models_copy / "iris-knn" / "1"
    card = ModelCard.read(folder)
    (folder / "model.joblib").unlink()
    os.mkfifo(folder / "model.joblib")
    problems: list[str] = []
    checker = threading.Thread(
        target=lambda: problems.extend(verify_artifacts(card, folder)), daemon=True
    )
    checker.start()
    checker.join(timeout=60)
    assert not checker.is_alive(), "the artifact check hangs on a FIFO"
    assert problems == ["model.joblib: not a regular file; refusing it"]


def test_oversize_cards_and_configs_are_refused_from_their_size(
    models_copy: Path, tmp_path: Path
) -> None:
    from app.repository import read_repository_file
    from app.repository.files import MAX_CONFIG_BYTES, RepositoryFileError

    # Sparse files: 300 MB by their size, no disk used, and never read.
    card = models_copy / "iris-knn" / "1" / "card.json"
    with card.open("r+b") as file:
        file.truncate(300 * 1024 * 1024)
    config = models_copy / "binary-mlp" / "config.json"
    with config.open("wb") as file:
        file.truncate(300 * 1024 * 1024)
    entries = {(e.name, e.version): e for e in _scan(models_copy)}
    assert "card.json is over the limit" in str(entries[("iris-knn", 1)].reason)
    with pytest.raises(RepositoryFileError, match="over the limit"):
        read_repository_file(config, models_copy.resolve(), MAX_CONFIG_BYTES)
    _assert_no_leak(str(entries[("iris-knn", 1)].reason))
