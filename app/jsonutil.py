"""Fast JSON encoding (orjson) for every response the service writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(payload: Any) -> bytes:
    """Encode to JSON bytes; numpy scalars and arrays are accepted as they are."""
    return orjson.dumps(payload, option=_OPTIONS)


def json_response(
    payload: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response encoded with orjson (several times faster than the stdlib encoder)."""
    return Response(dumps(payload), status_code, headers=headers, media_type="application/json")


async def send_json_ok(send: Send, body: bytes) -> None:
    """Send a 200 response of JSON `body` (from `dumps`) on the raw ASGI `send`, with the
    headers `json_response` gives (content-length, content-type): the hot path's answer
    without a Response object."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
