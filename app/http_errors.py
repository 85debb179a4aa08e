"""HTTP rendering of errors: every error response is `error_body` (`{"error": "..."}`) with
the error's status and headers, for routes, middleware, the fast path and FastAPI's own
validation and routing errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from app.context import request_context
from app.errors import ServingError, error_body
from app.schemas import problems
from app.schemas.versions import requested_version

log = logging.getLogger(__name__)


def error_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error response: `error_body(message)` with its status and headers."""
    return Response(
        error_body(message), status_code, headers=headers, media_type="application/json"
    )


def render_error(exc: ServingError) -> Response:
    """The response for a ServingError (every route, middleware and the fast path)."""
    return error_response(exc.status_code, exc.message, exc.headers)


def unexpected_error_response(
    method: str, path: str, request_id: str, exc: BaseException
) -> Response:
    """A 500 for an exception nobody expected: logged with its traceback, the client gets the
    request id to quote."""
    log.error("unhandled error on %s %s (request %s)", method, path, request_id, exc_info=exc)
    return error_response(
        500, f"internal server error (request id {request_id}); the server logged the details"
    )


def _describe_validation(exc: RequestValidationError) -> str:
    """FastAPI's validation problems (parameters, parsed bodies) in the project's words."""

    errors = [
        {**error, "msg": "must be a file upload (a multipart/form-data part with a filename)"}
        if "UploadFile" in str(error.get("msg", ""))
        else error
        for error in exc.errors()
    ]
    return problems.describe(
        errors, limit=5, where=lambda error: problems.location(error.get("loc", ()), skip={"body"})
    )


def _malformed_version(request: Request, exc: RequestValidationError) -> ServingError | None:
    """A path's version that is not a version number, as every route answers it (400, from
    the one parser), where FastAPI validated the path parameter as an integer."""
    for error in exc.errors():
        if tuple(error.get("loc", ())) == ("path", "version"):
            name = str(request.path_params.get("name", ""))
            try:
                requested_version(name, str(error.get("input", "")))
            except ServingError as malformed:
                return malformed
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Render ServingError, FastAPI validation errors and Starlette HTTP errors as `{"error"}`."""

    async def serving_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServingError)
        return render_error(exc)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        malformed = _malformed_version(request, exc)
        if malformed is not None:
            return render_error(malformed)
        return error_response(422, _describe_validation(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; see /docs"
        headers = exc.headers
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}; see /docs"
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return error_response(exc.status_code, message, headers)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        context = request_context(request.scope)
        return unexpected_error_response(request.method, request.url.path, context.request_id, exc)

    async def client_disconnect(_: Request, exc: Exception) -> Response:
        # Nobody reads this answer: the client hung up (or was cut off) mid-body. Not an error
        # of the server, so no traceback in its log.
        return error_response(400, "the client disconnected before sending the whole body")

    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(ClientDisconnect, client_disconnect)
    app.add_exception_handler(Exception, unexpected_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (Starlette's 405 names only the first
    route's, and a path may have a route per method: GET and POST .../decisions)."""
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            allowed |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(allowed))
