"""Per-request cost of `ApiKeyMiddleware` with a prediction key, in one checkout (issue 24).

    python bench/key_middleware_cost.py /tmp/old   # an older checkout's root
    python bench/key_middleware_cost.py .          # this one

Calls the middleware 200,000 times on a predict request with a valid key (the inner app does
nothing) and prints microseconds per call, three times. With admin keys where the checkout
has them.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
sys.path.insert(0, str(ROOT))

from app.context import SCOPE_KEY, RequestContext  # noqa: E402 - from the checkout named
from app.middleware import ApiKeyMiddleware, load_key_digests  # noqa: E402

KEY = "bench-key-0123456789"
CALLS = 200_000


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    pass


async def _receive() -> Any:
    return {"type": "http.request", "body": b""}


async def _send(message: Any) -> None:
    pass


async def main() -> None:
    options: dict[str, Any] = {
        "key_digests": load_key_digests([KEY], None),
        "open_paths": {"/health/live"},
        "open_prefixes": ("/static/",),
    }
    if "admin_digests" in ApiKeyMiddleware.__init__.__code__.co_varnames:
        options["admin_digests"] = load_key_digests(["admin-key-0123456789"], None)
        options["admin_paths"] = re.compile(r"^/v2/repository/models/[^/]+/(load|unload)$")
    middleware = ApiKeyMiddleware(_inner, **options)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/models/iris-knn:predict",
        "headers": [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {KEY}".encode()),
        ],
    }
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(CALLS):
            scope[SCOPE_KEY] = RequestContext()
            await middleware(scope, _receive, _send)
        print(f"{ROOT.name}: {(time.perf_counter() - started) / CALLS * 1e6:.2f} us per request")


if __name__ == "__main__":
    asyncio.run(main())
