"""`GET /v1/models/{name}[/versions/{v}]/report`: the model's report page (HTML)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse
from starlette.routing import Route

from app.api.deps import ModelName, ModelVersion, service_of
from app.api.promotion import report_section
from app.errors import Unavailable
from app.report import PageRequest, render
from app.schemas.responses import error_responses

# The only paths where a browser may present the API key as `?key=` (GET/HEAD): a person
# opening a page cannot set an Authorization header. See README, "Model report pages".
REPORT_PATH = re.compile(r"^/v1/models/[^/:]+(?:/versions/[^/:]+)?/report$")


_HTML_200 = {
    "description": "The report page: a self-contained HTML document (inline CSS, SVG charts "
    "and script; nothing loaded from elsewhere).",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


def security_headers(nonce: str) -> dict[str, str]:
    """Headers of every report page: the CSP allows nothing from another origin (the page
    works offline, and an injected script could not run or send data away); the key that may
    be in the URL is not sent on as a Referer, and the page is not cached."""
    return {
        "Content-Security-Policy": (
            "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            f"script-src 'nonce-{nonce}'; connect-src 'self'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


def report_path(root_path: str, name: str, version: int | None = None) -> str:
    """The URL path of a model's report (its latest version's, or one version's)."""
    middle = f"/versions/{version}" if version is not None else ""
    return f"{root_path}/v1/models/{name}{middle}/report"


def _endpoint(request: Request, name: str, version: int, suffix: str) -> str | None:
    """The URL of `/v1/models/{name}[/versions/{version}]<suffix>` if this app serves it (the
    version's own route first), else None. Monitoring and explanations come from other
    modules: the page only calls what exists, through HTTP, so it needs none of their code."""
    paths = {
        re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for route in request.app.routes
        if isinstance(route, Route)
    }
    root = request.scope.get("root_path", "")
    if "/v1/models/{name}/versions/{version}" + suffix in paths:
        return f"{root}/v1/models/{name}/versions/{version}{suffix}"
    if "/v1/models/{name}" + suffix in paths:
        return f"{root}/v1/models/{name}{suffix}"
    return None


async def _page(request: Request, name: str, version: int | None) -> HTMLResponse:
    entry = service_of(request).registry.find(name, version)
    if entry.card is None:
        raise Unavailable(
            f"model {name} version {entry.version} has no valid card: {entry.reason}",
            retry_after_s=30,
        )
    # The stats snapshot and the labels the service puts on the request, as the JSON routes.
    request.scope.setdefault("state", {}).update(model=entry.name, version=entry.version)
    root = request.scope.get("root_path", "")
    nonce = secrets.token_urlsafe(18)
    page = PageRequest(
        card=entry.card,
        folder=entry.folder,
        base_path=f"{root}/v1/models/{entry.name}/versions/{entry.version}",
        state=entry.state.value,
        serving=entry.stats.snapshot(),
        monitoring_url=_endpoint(request, entry.name, entry.version, "/monitoring"),
        explain_url=_endpoint(request, entry.name, entry.version, ":explain"),
        nonce=nonce,
        docs_path=f"{root}/docs",
        comparison_html=await report_section(request, entry.name),
    )
    # Drawing charts is CPU work (the first time per version): never on the event loop.
    html = await run_in_threadpool(render, page)
    return HTMLResponse(html, headers=security_headers(nonce))


async def model_report(request: Request, name: ModelName) -> HTMLResponse:
    """The report page of the model's latest version: the card at a glance, held-out quality
    (per-class metrics, confusion matrix, ROC for binary models), calibration, training
    curves, misclassified held-out examples, live stats refreshed in place, and an explanation
    of a sample input. With API keys, a browser can pass the key as `?key=`."""
    return await _page(request, name, None)


async def model_report_version(
    request: Request, name: ModelName, version: ModelVersion
) -> HTMLResponse:
    """The report page of one version."""
    return await _page(request, name, version)


def _json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The errors, documented as JSON (FastAPI would put the error model under the route's
    own media type, HTML); a browser asking for HTML without a key gets the key form."""
    documented = error_responses(*codes)
    for code, response in documented.items():
        del response["model"]
        response["content"]["application/json"]["schema"] = {
            "$ref": "#/components/schemas/ErrorResponse"
        }
        if code == 401:
            response["content"]["text/html"] = {"schema": {"type": "string"}}
            response["description"] += " A browser (Accept: text/html) gets a form for the key."
    return documented


def add_report_routes(app: FastAPI) -> None:
    """The two report routes, and a place for links to every model's report in the API
    description (`REPORT_LINKS`, filled by `report_links`)."""
    for path, endpoint, summary in (
        ("/v1/models/{name:model}/report", model_report, "Model report page (HTML)"),
        (
            "/v1/models/{name:model}/versions/{version:version}/report",
            model_report_version,
            "Report page of one version (HTML)",
        ),
    ):
        errors = _json_errors(*((400, 401, 404, 503) if "{version" in path else (401, 404, 503)))
        app.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            tags=["reports"],
            summary=summary,
            response_class=HTMLResponse,
            responses={200: _HTML_200, **errors},
        )
    app.description += (
        "\n* **Reports**: an HTML page per model, for people: held-out quality with charts, "
        "calibration, training curves, mistakes, live health and an explanation: "
        "`GET /v1/models/{name}/report` (with API keys, open it as `...?key=<key>`): "
        + REPORT_LINKS
        + "."
    )


# Replaced by `report_links` when the OpenAPI document is built (the models change live).
REPORT_LINKS = "{report_links}"


def report_links(names: list[str]) -> str:
    """Markdown links to every model's report page."""
    # Relative to /docs, so they hold behind a proxy's path prefix too.
    return ", ".join(f"[{name}](v1/models/{name}/report)" for name in names)
