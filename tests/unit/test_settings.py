"""Settings come from SYNERGY_* environment variables, once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.port == 8000 and settings.max_instances == 1000
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.batching_for("any").max_batch_size == 64
    assert settings.batching_for("any").max_batch_wait_ms == 2.0


def test_environment_with_prefix_lists_and_per_model_batching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNERGY_PORT", "9001")
    monkeypatch.setenv("SYNERGY_API_KEYS", "alpha, beta")
    monkeypatch.setenv("SYNERGY_CORS_ORIGINS", '["https://a.example"]')
    monkeypatch.setenv(
        "SYNERGY_MODEL_BATCHING", '{"mnist-cnn": {"max_batch_size": 128, "max_queue_rows": 512}}'
    )
    settings = Settings()
    assert settings.port == 9001
    assert settings.api_keys == ["alpha", "beta"]
    assert settings.cors_origins == ["https://a.example"]
    assert settings.batching_for("mnist-cnn").max_batch_size == 128
    assert settings.batching_for("iris-knn").max_batch_size == 64


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SYNERGY_PORT", "-1"),
        ("SYNERGY_MAX_BATCH_SIZE", "0"),
        ("SYNERGY_LOG_LEVEL", "loud"),
        ("SYNERGY_MODEL_BATCHING", '{"m": {"max_batch_size": 64, "max_queue_rows": 8}}'),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("value", ["", "   ", ",", "[]", '[" "]'])
def test_api_keys_set_but_empty_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SYNERGY_API_KEYS", value)
    with pytest.raises(ValidationError, match="holds no key"):
        Settings()


def test_api_keys_in_a_json_list_are_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNERGY_API_KEYS", '[" k1 ", "k2"]')
    assert Settings().api_keys == ["k1", "k2"]
