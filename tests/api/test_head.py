"""HEAD answers like GET, without a body, on every GET route the app has."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Route

PATH_VALUES = {"name": "iris-knn", "version": "1"}


def _get_paths(app: Any) -> list[str]:
    paths = []
    for route in app.routes:
        if isinstance(route, Route) and "GET" in (route.methods or set()):
            # "/v1/models/{name:model}/versions/{version}" -> "/v1/models/iris-knn/versions/1"
            paths.append(re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES[m.group(1)], route.path))
    return paths


def test_every_get_route_answers_head_like_get_without_a_body(client: Any) -> None:
    paths = _get_paths(client.app)
    # The probes and scrapes monitors use, at least.
    assert {"/health/live", "/health/ready", "/v2/health/ready", "/metrics", "/v1/models"} <= set(
        paths
    )
    for path in paths:
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code == 200, (path, head.status_code)
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        if path != "/metrics":  # the scrape's text changes between two calls
            assert head.headers["content-length"] == get.headers["content-length"], path
    # HEAD is GET without the body, not a way around the methods a route allows.
    response = client.head("/v1/models/iris-knn:predict")
    assert response.status_code == 405 and response.content == b""
