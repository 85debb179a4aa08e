"""Settings come from SYNERGY_* environment variables, once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.serving.port == 8000 and settings.limits.max_instances == 1000
    assert settings.limits.max_body_bytes == 8 * 1024 * 1024
    assert settings.batching.for_model("any").max_batch_size == 64
    assert settings.batching.for_model("any").max_batch_wait_ms == 2.0


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
    assert settings.serving.port == 9001
    assert settings.security.api_keys == ["alpha", "beta"]
    assert settings.security.cors_origins == ["https://a.example"]
    assert settings.batching.for_model("mnist-cnn").max_batch_size == 128
    assert settings.batching.for_model("iris-knn").max_batch_size == 64


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
    assert Settings().security.api_keys == ["k1", "k2"]


def test_an_invalid_setting_is_reported_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import variable_of

    monkeypatch.setenv("SYNERGY_MAX_BATCH_WAIT_MS", "-1")
    monkeypatch.setenv("SYNERGY_MODEL_BATCHING", '{"m": {"max_batch_size": 0}}')
    with pytest.raises(ValidationError) as caught:
        Settings()
    variables = {variable_of(error["loc"]) for error in caught.value.errors()}
    assert variables == {"SYNERGY_MAX_BATCH_WAIT_MS", "SYNERGY_MODEL_BATCHING.M.MAX_BATCH_SIZE"}


def test_flat_keywords_and_the_environment_fill_the_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNERGY_MAX_BATCH_WAIT_MS", "7")
    monkeypatch.setenv("SYNERGY_STORE_BATCH_ROWS", "10")
    settings = Settings(max_batch_size=8, store_dir="elsewhere")  # type: ignore[call-arg]
    assert settings.batching.max_batch_wait_ms == 7.0
    assert settings.batching.max_batch_size == 8
    assert settings.store.store_batch_rows == 10
    assert str(settings.store.store_dir) == "elsewhere"
    # A keyword wins over the environment, as it always did.
    monkeypatch.setenv("SYNERGY_PORT", "9001")
    assert Settings(port=9002).serving.port == 9002  # type: ignore[call-arg]


def test_the_global_queue_may_hold_less_than_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNERGY_MAX_QUEUE_ROWS", "10")
    assert Settings().batching.for_model("any").max_queue_rows == 64


def test_the_payload_log_setting_is_a_value_of_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(payload_log="stdout").payload_logging.payload_log == "stdout"  # type: ignore[call-arg]
    monkeypatch.setenv("SYNERGY_PAYLOAD_LOG", "/var/log/payloads.jsonl")
    monkeypatch.setenv("SYNERGY_PAYLOAD_LOG_SAMPLE", "0.5")
    group = Settings().payload_logging
    assert (group.payload_log, group.payload_log_sample) == ("/var/log/payloads.jsonl", 0.5)
