"""Fast JSON encoding (orjson) for every response the service writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(payload: Any) -> bytes:
    """Encode to JSON bytes; numpy scalars and arrays are accepted as they are."""
    return orjson.dumps(payload, option=_OPTIONS)


def json_response(
    payload: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response encoded with orjson (several times faster than the stdlib encoder)."""
    return Response(dumps(payload), status_code, headers=headers, media_type="application/json")
