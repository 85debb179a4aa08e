"""The hot path's own lane: `:predict` and V2 `infer` requests skip FastAPI's stack.

Every request to a FastAPI app crosses, before this project's middleware, Starlette's error
middleware (a `send` wrapper per request), FastAPI's exception-telemetry and body-limit
middlewares and the app's own `__call__`s; then the HEAD middleware, and only then the
predict fast path. On a single-row prediction, that is more event-loop time than decoding the
request (py-spy, concurrency 64). None of it does anything for these two routes: their
endpoints catch every exception themselves (a ServingError is rendered, anything else is a
logged JSON 500, as the app's handlers would), they are POST only (HEAD does not apply), and
FastAPI's body limit is off (ours, `BodyLimitMiddleware`, is on this lane).

So `ServingApp` (the FastAPI app `create_app` returns) matches these two routes first, on the
raw path, and sends a match down a short stack of this project's middleware, the same
classes the rest of the app runs: observability (request id, metrics, access log, drain
bookkeeping) -> API keys (when set) -> body limit -> the endpoint. Anything else, and every
request the lane cannot serve exactly as the full stack would (a CORS request, with its
headers to add; OpenTelemetry on, which must see every request), takes the full stack, whose
routes serve these paths too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

# A matched hot-path request: `serve(scope, receive, send, *parameters)` answers it.
Handler = tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]
# Path -> its handler, or None when the path is not this matcher's.
Matcher = Callable[[str], Handler | None]
HANDLER_KEY = "synergy.handler"
# Paths whose match is remembered (a match is a pure function of the path): clients repeat
# the same few, and a bounded table cannot be grown without end by made-up ones.
MATCH_CACHE_PATHS = 1024


class _Dispatch:
    """The innermost app of the lane: the handler the match found."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serve, parameters = scope.pop(HANDLER_KEY)
        await serve(scope, receive, send, *parameters)


class ServingApp(FastAPI):
    """FastAPI, with the hot-path lane in front (see the module). Without `install_lane` it
    is plain FastAPI."""

    _lane: ASGIApp | None = None
    _matchers: tuple[Matcher, ...] = ()
    _skip_with_origin = False
    _matched: dict[str, Handler | None]

    def install_lane(
        self,
        matchers: tuple[Matcher, ...],
        wrap: Callable[[ASGIApp], ASGIApp],
        *,
        skip_with_origin: bool,
    ) -> None:
        """Serve the paths `matchers` recognise through `wrap(dispatch)` (the middleware
        the lane keeps, outermost last-applied); `skip_with_origin`: requests with an
        `Origin` header take the full stack (CORS is configured there)."""
        self._matchers = matchers
        self._lane = wrap(_Dispatch())
        self._skip_with_origin = skip_with_origin
        self._matched = {}

    def _match(self, scope: Scope) -> Handler | None:
        path: str = scope["path"]
        try:
            handler = self._matched[path]
        except KeyError:
            handler = self._match_path(path)
            if len(self._matched) >= MATCH_CACHE_PATHS:
                self._matched.clear()
            self._matched[path] = handler
        if (
            handler is not None
            and self._skip_with_origin
            and any(k == b"origin" for k, _ in scope["headers"])
        ):
            return None
        return handler

    def _match_path(self, path: str) -> Handler | None:
        for matcher in self._matchers:
            handler = matcher(path)
            if handler is not None:
                return handler
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._lane is not None and scope["type"] == "http" and scope["method"] == "POST":
            handler = self._match(scope)
            if handler is not None:
                scope["app"] = self  # as Starlette sets it, for anything that looks
                scope[HANDLER_KEY] = handler
                await self._lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
