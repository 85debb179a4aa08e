"""HEAD requests answered like GET, without the body."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadMiddleware:
    """`HEAD` on every GET endpoint: the GET response without its body (RFC 9110 9.3.2).

    Generic, so a GET route added later answers HEAD too (uptime monitors and `curl -I`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, send_headers_only)
        finally:
            if "endpoint" in inner:  # the route's name labels the request's metrics
                scope["endpoint"] = inner["endpoint"]
