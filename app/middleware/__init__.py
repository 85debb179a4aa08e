"""Pure ASGI middleware: observability, body-size limit, API keys, HEAD.

Written against raw ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a
stream copy per request on the hot path. One middleware per module (observability.py,
body_limit.py, api_keys.py, head.py; state.py the in-flight requests); every name is imported
from here.
"""

from app.middleware.api_keys import (
    ADMIN_PREFIX,
    ADMIN_SUFFIX,
    ApiKeyMiddleware,
    caller_fingerprint,
    key_index,
    key_matches,
    load_key_digests,
    token_fingerprint,
)
from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.head import HeadMiddleware
from app.middleware.observability import ObservabilityMiddleware, RequestRecorder
from app.middleware.state import SHUT_DOWN_MESSAGE, ServerState

__all__ = [
    "ADMIN_PREFIX",
    "ADMIN_SUFFIX",
    "SHUT_DOWN_MESSAGE",
    "ApiKeyMiddleware",
    "BodyLimitMiddleware",
    "HeadMiddleware",
    "ObservabilityMiddleware",
    "RequestRecorder",
    "ServerState",
    "caller_fingerprint",
    "key_index",
    "key_matches",
    "load_key_digests",
    "token_fingerprint",
]
