"""Swagger UI and ReDoc served from an installed package: the docs work with no internet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

# fastapi-offline ships Swagger UI 5 (renders OpenAPI 3.1) and ReDoc; its Python helpers are
# not used, only its static files.
ASSETS = Path(str(resources.files("fastapi_offline") / "static"))
ASSETS_URL = "/static/docs"
SWAGGER_UI_PARAMETERS = {
    "docExpansion": "list",
    "defaultModelsExpandDepth": 0,
    "displayRequestDuration": True,
    "persistAuthorization": True,
    "tryItOutEnabled": False,
}


def install_docs(app: FastAPI) -> None:
    """/docs, /redoc, their assets, the favicon, and `/` -> `/docs`."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    title = app.title

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/docs")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root_path}{app.openapi_url}",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root_path}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root_path}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root_path}/favicon.ico",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root_path}{app.openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root_path}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root_path}/favicon.ico",
            with_google_fonts=False,
        )

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(ASSETS / "favicon.png", media_type="image/png")
