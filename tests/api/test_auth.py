"""API keys and CORS. Protected routes are enumerated from the app itself, so a route added
later is covered without touching this test."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from tests.conftest import running_app

KEYS = ["alpha-key-0123456789", "beta-key-9876543210"]
ADMIN_KEY = "admin-key-5555555555"
OPEN = {
    "/",
    "/health/live",
    "/health/ready",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/favicon.ico",
    "/metrics",
    "/v2/health/live",
    "/v2/health/ready",
}
VALUES = {"name": "iris-knn", "version": "1", "label": "stable", "path": "swagger-ui.css"}


@pytest.fixture(scope="module")
def keyed(tiny_models_dir: Path) -> Iterator[Any]:
    with running_app(tiny_models_dir, api_keys=KEYS, admin_api_keys=[ADMIN_KEY]) as client:
        yield client


def _routes(client: Any) -> list[tuple[str, str]]:
    """(method, concrete path) of every route the app serves."""
    routes = []
    for context in iter_route_contexts(client.app.routes):
        path = (context.path_format or "").format(**VALUES)
        for method in sorted(context.methods or {"GET"}):
            if method != "HEAD":
                routes.append((method, path))
    assert len(routes) >= 15
    return routes


def _call(client: Any, method: str, path: str, **headers: str) -> Any:
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]} if method == "POST" else None
    return client.request(method, path, json=body, headers=headers)


def test_every_protected_route_needs_a_key(keyed: Any) -> None:
    protected = [
        (m, p) for m, p in _routes(keyed) if p not in OPEN and not p.startswith("/static/docs/")
    ]
    assert any("predict" in p for _, p in protected)
    assert any(p.endswith(":feedback") for _, p in protected)
    assert any(p.endswith("/monitoring") for _, p in protected)
    for method, path in protected:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-key"},
            {"Authorization": f"Basic {KEYS[0]}"},
            {"Authorization": "Bearer "},
        ):
            response = _call(keyed, method, path, **headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "API key" in response.json()["error"]
        allowed = _call(keyed, method, path, Authorization=f"Bearer {KEYS[1]}")
        assert allowed.status_code != 401, (method, path)
    # The repository API's unload was among them: the model serves again for the next tests.
    loaded = keyed.post(
        "/v2/repository/models/iris-knn/load", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert loaded.status_code == 200, loaded.text


def test_open_routes_stay_open(keyed: Any) -> None:
    for method, path in _routes(keyed):
        if path in OPEN or path.startswith("/static/docs/"):
            response = keyed.request(method, path, follow_redirects=False)
            assert response.status_code in (200, 307), (path, response.status_code)


def test_predict_with_a_key(keyed: Any) -> None:
    response = _call(
        keyed, "POST", "/v1/models/iris-knn:predict", Authorization=f"Bearer {KEYS[0]}"
    )
    assert response.status_code == 200


def test_docs_know_the_bearer_scheme(keyed: Any) -> None:
    schema = keyed.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/health/ready"]["get"]["security"] == []
    assert "security" not in schema["paths"]["/v1/models/iris-knn:predict"]["post"]


def test_metrics_can_be_closed_and_keys_come_from_a_hashed_file(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys.sha256"
    key_file.write_text(
        "# one sha256 hex digest per line\n" + hashlib.sha256(b"from-the-file").hexdigest() + "\n"
    )
    with running_app(tiny_models_dir, api_keys_file=key_file, protect_metrics=True) as client:
        assert client.get("/metrics").status_code == 401
        assert (
            client.get("/metrics", headers={"Authorization": "Bearer from-the-file"}).status_code
            == 200
        )
        assert (
            client.get("/v1/models", headers={"Authorization": f"Bearer {KEYS[0]}"}).status_code
            == 401
        )


def test_a_bad_hashed_key_file_is_refused_at_start(tiny_models_dir: Path, tmp_path: Path) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    key_file = tmp_path / "keys.sha256"
    key_file.write_text("not-a-digest\n")
    with pytest.raises(ValueError, match="expected a sha256 hex digest"):
        create_app(make_settings(tiny_models_dir, api_keys_file=key_file))


def test_cors_is_closed_by_default_and_opens_per_setting(
    client: Any, tiny_models_dir: Path
) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    response = client.options("/v1/models/iris-knn:predict", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    with running_app(tiny_models_dir, cors_origins=["https://app.example"]) as cors:
        response = cors.options("/v1/models/iris-knn:predict", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        other = cors.options(
            "/v1/models/iris-knn:predict", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("content", ["", "\n  \n", "# only a comment\n"])
def test_a_key_file_without_keys_is_refused_at_start(
    tiny_models_dir: Path, tmp_path: Path, content: str
) -> None:
    from app.main import create_app
    from app.settings import ConfigError
    from tests.conftest import make_settings

    key_file = tmp_path / "keys.sha256"
    key_file.write_text(content)
    with pytest.raises(ConfigError, match="holds no key digest"):
        create_app(make_settings(tiny_models_dir, api_keys_file=key_file))


def test_a_json_list_key_with_spaces_matches_the_stripped_key(tiny_models_dir: Path) -> None:
    from app.settings import Settings

    settings_keys = Settings.model_validate({"api_keys": '[" k1 "]'}).security.api_keys
    with running_app(tiny_models_dir, api_keys=settings_keys) as client:
        assert client.get("/v1/models", headers={"Authorization": "Bearer k1"}).status_code == 200
        assert client.get("/v1/models").status_code == 401
