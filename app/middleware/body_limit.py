"""The request body's size limit: 413 from the Content-Length, or as soon as a streamed body
passes the limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge
from app.http_errors import render_error


class BodyLimitMiddleware:
    """413 for bodies over the limit: at once from Content-Length, else while streaming."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self, size: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the body is {size} bytes, over the limit of {self.max_body_bytes}; send fewer "
            "instances per request or smaller images"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                    continue
                if declared > self.max_body_bytes:
                    error = self._too_large(str(declared))
                    error.headers["Connection"] = "close"
                    await render_error(error)(scope, receive, send)
                    return
            elif key == b"transfer-encoding":
                chunked = True
        if declared is not None and declared >= 0 and not chunked:
            # The HTTP server delivers exactly the declared bytes, within the limit: nothing
            # to count (the common request, which then skips a wrapper per receive).
            await self.app(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the app's body read: the app's error handler renders 413.
                    raise self._too_large(f"over {received}")
            return message

        await self.app(scope, counting_receive, send)
