"""Exceptions: one class per status the server documents, under `ClientError` (4xx) and
`ServerError` (5xx), all under `SynergyError`.

Each carries the HTTP status and the server's own message (its `{"error": "..."}` body), which
says what is wrong and how to fix it.
"""

from __future__ import annotations


class SynergyError(Exception):
    """Base of every error this client raises.

    Attributes:
        message: the server's `error` text (or a description of the failure).
        status: the HTTP status, or None when no response came back (`NetworkError`).
        retry_after_s: the server's `Retry-After` in seconds, when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message if self.status is None else f"HTTP {self.status}: {self.message}"


class NetworkError(SynergyError):
    """No HTTP response: connection refused or reset, DNS failure, timeout. Never retried for
    a prediction: the server may have done the work."""


class ClientError(SynergyError):
    """4xx: the request needs fixing; sending it again as is gives the same answer."""


class BadRequest(ClientError):
    """400: the body is not valid JSON (or multipart)."""


class Unauthorized(ClientError):
    """401: missing or wrong API key (pass `api_key=`)."""


class NotFound(ClientError):
    """404: unknown model, version or path; the message lists what exists."""


class PayloadTooLarge(ClientError):
    """413: body, image or number of instances over a server limit; split the request."""


class UnsupportedMediaType(ClientError):
    """415: wrong content type."""


class InvalidInput(ClientError):
    """422: wrong shape, type or range, NaN/Infinity, text too long, an unreadable image."""


class ServerError(SynergyError):
    """5xx: the server could not answer this time."""


class ModelFailed(ServerError):
    """500: the model raised on this batch; the server carries on."""


class Unavailable(ServerError):
    """503: overloaded, still loading, failed to load or shutting down. Retried by the client
    (see `max_retries`) when the server sends `Retry-After`; raised once retries run out."""


class DeadlineExceeded(ServerError):
    """504: no prediction within the server's request deadline."""


_BY_STATUS: dict[int, type[SynergyError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidInput,
    500: ModelFailed,
    503: Unavailable,
    504: DeadlineExceeded,
}


def error_class(status: int) -> type[SynergyError]:
    """The exception class for an HTTP error status (the 4xx/5xx base for other codes)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return ClientError
    if 500 <= status < 600:
        return ServerError
    return SynergyError
