"""The service's errors as gRPC status codes: the same message as the REST body's `error`.

| error (HTTP status)                          | gRPC code           |
|----------------------------------------------|---------------------|
| BadRequest 400, UnsupportedMediaType 415,    | INVALID_ARGUMENT    |
| InvalidInput 422                             |                     |
| Unauthorized 401                             | UNAUTHENTICATED     |
| Forbidden 403 (a prediction key, control off) | PERMISSION_DENIED  |
| Conflict 409 (unload while polled, a race)   | FAILED_PRECONDITION |
| NotFound 404                                 | NOT_FOUND           |
| PayloadTooLarge 413                          | RESOURCE_EXHAUSTED  |
| Unavailable 503 (overload, loading, drain)   | UNAVAILABLE         |
| DeadlineExceeded 504                         | DEADLINE_EXCEEDED   |
| ClientDisconnected 499                       | CANCELLED           |
| ModelFailed 500, anything else               | INTERNAL            |

UNAVAILABLE carries the retry delay in its trailing metadata twice: `retry-after` (seconds,
as the HTTP header) and `grpc-retry-pushback-ms`, which gRPC's own retry policy honours.
"""

from __future__ import annotations

import grpc

from app.errors import ServingError

CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# The HTTP status each code stands for, in metrics, live stats and the access log.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


def grpc_code(error: ServingError) -> grpc.StatusCode:
    """The gRPC code of a service error (INTERNAL for a status without one)."""
    return CODES.get(error.status_code, grpc.StatusCode.INTERNAL)


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status a gRPC code stands for (500 for the rest)."""
    return HTTP_STATUS.get(code, 500)


def trailing_metadata(error: ServingError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata for the error: the retry delay of an UNAVAILABLE."""
    retry_after = error.headers.get("Retry-After")
    if error.status_code != 503 or retry_after is None:
        return ()
    return (
        ("retry-after", retry_after),
        ("grpc-retry-pushback-ms", str(int(float(retry_after) * 1000))),
    )
