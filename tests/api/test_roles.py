"""Roles (docs/security.md): model control needs an admin key and is off unless configured;
predictions work with prediction keys alone; an explicit unload is refused while the models
dir is polled, so polling can never leave a replica unready for good."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_error, make_settings, running_app

USER = "user-key-0123456789"
ADMIN = "admin-key-9876543210"
IRIS = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
UNLOAD = "/v2/repository/models/iris-knn/unload"
LOAD = "/v2/repository/models/iris-knn/load"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_control_api_is_off_by_default(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir) as client:
        for path in (UNLOAD, LOAD):
            assert_error(client.post(path), 403, "model-control API is off", "ADMIN_API_KEYS")
        # The read-only index stays; predictions serve.
        assert client.post("/v2/repository/index").status_code == 200
        assert client.post("/v1/models/iris-knn:predict", json=IRIS).status_code == 200
        assert client.get("/health/ready").status_code == 200


def test_prediction_keys_predict_but_only_admin_keys_control(tiny_models_dir: Path) -> None:
    with running_app(
        tiny_models_dir, api_keys=[USER], admin_api_keys=[ADMIN], model_poll_s=0
    ) as client:
        assert client.post("/v1/models/iris-knn:predict", json=IRIS).status_code == 401
        assert (
            client.post("/v1/models/iris-knn:predict", json=IRIS, headers=_bearer(USER))
        ).status_code == 200
        assert_error(client.post(UNLOAD), 401, "API key")
        assert_error(client.post(UNLOAD, headers=_bearer(USER)), 403, "admin key")
        assert_error(client.post(LOAD, headers=_bearer(USER)), 403, "admin key")
        assert client.get("/health/ready").status_code == 200
        # The admin key does both.
        assert (
            client.post("/v1/models/iris-knn:predict", json=IRIS, headers=_bearer(ADMIN))
        ).status_code == 200
        assert client.post(UNLOAD, headers=_bearer(ADMIN)).status_code == 200
        assert client.post(LOAD, headers=_bearer(ADMIN)).status_code == 200


def test_admin_keys_alone_leave_predictions_open_and_close_control(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "admin.sha256"
    keys.write_text(hashlib.sha256(ADMIN.encode()).hexdigest() + "\n")
    with running_app(tiny_models_dir, admin_api_keys_file=keys, model_poll_s=0) as client:
        assert client.post("/v1/models/iris-knn:predict", json=IRIS).status_code == 200
        assert_error(client.post(UNLOAD), 401, "API key")
        assert_error(client.post(UNLOAD, headers=_bearer("guess")), 401, "API key")
        assert client.post(LOAD, headers=_bearer(ADMIN)).status_code == 200


def test_an_unload_is_refused_while_the_models_dir_is_polled(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir, admin_api_keys=[ADMIN], model_poll_s=30) as client:
        assert_error(client.post(UNLOAD, headers=_bearer(ADMIN)), 409, "polled", "MODEL_POLL_S")
        assert client.get("/health/ready").status_code == 200
        # Loading (a rescan now) is harmless while polled.
        assert client.post(LOAD, headers=_bearer(ADMIN)).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_keys": [USER], "control_api": True}, "needs an admin key"),
        ({"admin_api_keys_file": Path("/nonexistent/admin.sha256")}, "ADMIN_API_KEYS_FILE"),
    ],
)
def test_a_control_setting_that_cannot_work_refuses_the_start(
    tiny_models_dir: Path, overrides: dict[str, Any], message: str
) -> None:
    from app.main import create_app
    from app.settings import ConfigError

    with pytest.raises(ConfigError, match=message):
        create_app(make_settings(tiny_models_dir, **overrides))


def test_an_empty_admin_keys_setting_is_refused() -> None:
    from pydantic import ValidationError

    from app.settings import Settings

    with pytest.raises(ValidationError, match="SYNERGY_ADMIN_API_KEYS is set but holds no key"):
        Settings.model_validate({"admin_api_keys": ""})
