"""The start-up lines a person looks for: the ready line names the models, the addresses to
open, and any version that failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.console import base_url, ready_line
from app.repository import ModelState
from app.settings import ServingSettings


@dataclass
class _Entry:
    name: str
    version: int
    state: ModelState
    reason: str | None = None


@dataclass
class _Service:
    registry: list[_Entry]
    ready: bool

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ready, {}


def test_the_ready_line_names_the_models_and_where_to_go() -> None:
    service = _Service(
        [_Entry("iris-knn", 2, ModelState.READY), _Entry("mnist-cnn", 2, ModelState.READY)], True
    )
    line = ready_line(service, ServingSettings(host="127.0.0.1", port=8123), 12.34)  # type: ignore[arg-type]
    assert line == (
        "ready: 2 models (iris-knn v2, mnist-cnn v2) in 12.3s; "
        "API docs http://127.0.0.1:8123/docs; "
        "report pages http://127.0.0.1:8123/v1/models/<name>/report"
    )


def test_the_ready_line_says_what_failed_and_why() -> None:
    service = _Service(
        [
            _Entry("iris-knn", 2, ModelState.READY),
            _Entry("iris-knn", 3, ModelState.FAILED, "model.joblib: sha256 differs from the card"),
            _Entry("broken", 1, ModelState.FAILED, "card.json: not a valid card"),
        ],
        True,
    )
    line = ready_line(service, ServingSettings(host="0.0.0.0", port=8000), 1.0)  # type: ignore[arg-type]
    assert line.startswith(
        "ready: 1 model (iris-knn v2) in 1.0s; API docs http://127.0.0.1:8000/docs"
    )
    assert "FAILED to load: iris-knn v3: model.joblib: sha256 differs from the card; " in line
    assert "broken v1: card.json: not a valid card" in line
    service.ready = False
    assert ready_line(service, ServingSettings(), 1.0).startswith("NOT ready: ")  # type: ignore[arg-type]


def test_an_address_for_every_interface_is_opened_on_this_machine() -> None:
    assert base_url(ServingSettings(host="0.0.0.0", port=80)) == "http://127.0.0.1:80"
    assert base_url(ServingSettings(host="::", port=80)) == "http://[::1]:80"
    assert base_url(ServingSettings(host="10.0.0.5", port=81)) == "http://10.0.0.5:81"
