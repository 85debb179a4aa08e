"""Errors that carry their status and a message meant for the client.

A leaf module with no web framework: the core, the batchers and the adapters raise these; the
HTTP layer (`app.http_errors`) and gRPC (`app.rpc.status`) render them. Every error body is
`{"error": "<what is wrong and how to fix it>"}`, the convention TF Serving, the Open
Inference Protocol, KServe and MLServer share.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson


class ServingError(Exception):
    """Base class: an error with an HTTP status and a message meant for the client."""

    status_code = 500

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})
        # For an error about one row of a request: its index, for the protocol to name it.
        self.instance: int | None = None


class BadRequest(ServingError):
    """The request cannot be parsed (malformed JSON, wrong content type)."""

    status_code = 400


class MalformedVersion(BadRequest):
    """A requested version that is not a version number (`x`, `0`, `2**63`): the same 400 on
    every route, protocol and header (TF Serving's INVALID_ARGUMENT)."""


class Unauthorized(ServingError):
    """Missing or wrong API key."""

    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServingError):
    """A valid key without the role the operation needs, or an operation turned off."""

    status_code = 403


class NotFound(ServingError):
    """Unknown model, version or path."""

    status_code = 404


class Conflict(ServingError):
    """The operation contradicts the server's configuration (an unload while polled), or lost
    a race with a later one that changed the same thing (a load overtaken by an unload)."""

    status_code = 409


class PayloadTooLarge(ServingError):
    """Body, image or instance count over a configured limit."""

    status_code = 413


class UnsupportedMediaType(ServingError):
    """The body is not JSON (or, for uploads, not multipart)."""

    status_code = 415


class InvalidInput(ServingError):
    """The request parses but its content is wrong (shape, type, range, NaN)."""

    status_code = 422


class ModelFailed(ServingError):
    """The model raised while predicting; only the requests of that batch fail."""

    status_code = 500


class Unavailable(ServingError):
    """Overloaded, not ready or shutting down: retry later, ideally elsewhere."""

    status_code = 503

    def __init__(
        self, message: str, *, retry_after_s: int = 1, close_connection: bool = False
    ) -> None:
        headers = {"Retry-After": str(retry_after_s)}
        if close_connection:
            # Shutting down: make keep-alive clients reconnect (to another replica).
            headers["Connection"] = "close"
        super().__init__(message, headers=headers)


class DeadlineExceeded(ServingError):
    """The request did not get its prediction within the configured deadline."""

    status_code = 504


def error_body(message: str) -> bytes:
    """The one shape of every error body: `{"error": message}` as JSON bytes."""
    return orjson.dumps({"error": message})
