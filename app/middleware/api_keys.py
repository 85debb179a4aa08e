"""API keys: the hashed keys file, callers' fingerprints, and the middleware that denies by
default (prediction keys and admin keys; health checks open)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from starlette.datastructures import QueryParams
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.context import request_context
from app.errors import Forbidden, Unauthorized
from app.http_errors import render_error
from app.settings import ConfigError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def load_key_digests(
    keys: Iterable[str], hashed_keys_file: Path | None, setting: str = "SYNERGY_API_KEYS_FILE"
) -> list[bytes]:
    """sha256 digests of the plain keys, plus those listed (hex, one a line) in the file.

    Raises ConfigError when the file cannot be read, has a line that is not a digest, or
    holds no digest at all: setting a keys file means "require a key", never "open to all".
    `setting` names the file's setting in those messages.
    """
    digests = [_digest(key) for key in keys if key]
    if hashed_keys_file is not None:
        try:
            text = hashed_keys_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{setting} {hashed_keys_file} cannot be read "
                f"({exc.strerror if isinstance(exc, OSError) else 'not text'})"
            ) from exc
        found = 0
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if not re.fullmatch(r"[0-9a-fA-F]{64}", line):
                raise ConfigError(f"{hashed_keys_file}:{number}: expected a sha256 hex digest")
            digests.append(bytes.fromhex(line))
            found += 1
        if not found:
            raise ConfigError(
                f"{setting} {hashed_keys_file} holds no key digest; add one "
                '(printf %s "$KEY" | sha256sum), or unset it'
            )
    return digests


# Where admin paths (app.api.repository.ADMIN_PATHS) start or end.
ADMIN_PREFIX = "/v2/repository/"
ADMIN_SUFFIX = "/decisions"


def caller_fingerprint(digest: bytes) -> str:
    """What the server remembers of a key (the owner of a prediction): 16 hex digits of a
    hash of its sha256 digest, so neither the key nor its digest is ever stored."""
    return hashlib.sha256(b"synergy-caller\0" + digest).hexdigest()[:16]


def token_fingerprint(token: str) -> str:
    """The caller fingerprint of a presented key (as `caller_fingerprint` of its digest)."""
    return caller_fingerprint(_digest(token))


def key_index(key_digests: list[bytes], token: str) -> int:
    """Index in `key_digests` of the key `token` is, or -1 (compared with every key, in
    constant time, whatever matches first). Every protocol checks keys with this."""
    presented = _digest(token)
    found = -1
    for index, digest in enumerate(key_digests):
        if hmac.compare_digest(presented, digest):
            found = index
    return found


def key_matches(key_digests: list[bytes], token: str) -> bool:
    """Whether `token` is one of the keys (see `key_index`)."""
    return key_index(key_digests, token) >= 0


class ApiKeyMiddleware:
    """Every path needs `Authorization: Bearer <key>` except the open ones; admin paths need
    an admin key (docs/security.md).

    Deny by default: a route added later is protected unless it is listed as open here. The
    caller's key fingerprint and role go into the request's context (feedback ownership,
    per-caller shares).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        key_digests: list[bytes],
        open_paths: set[str],
        open_prefixes: tuple[str, ...],
        browser_paths: re.Pattern[str] | None = None,
        admin_digests: list[bytes] | None = None,
        admin_paths: re.Pattern[str] | None = None,
    ) -> None:
        self.app = app
        admin_digests = admin_digests or []
        # Admin keys work wherever a prediction key does; with no prediction keys at all, the
        # paths that are not admin paths are open (only admin keys were configured).
        self.require_key = bool(key_digests)
        self.digests = [*key_digests, *admin_digests]
        self.roles = [False] * len(key_digests) + [True] * len(admin_digests)
        self.fingerprints = [caller_fingerprint(d) for d in self.digests]
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes
        # Pages people open in a browser (the model reports): GET/HEAD there may present the
        # key as `?key=`, and a browser without one gets a form asking for it.
        self.browser_paths = browser_paths
        self.admin_paths = admin_paths if admin_digests else None

    def _match(self, token: str) -> int:
        """Index of the configured key `token` is, or -1."""
        return key_index(self.digests, token)

    def _is_browser_page(self, scope: Scope) -> bool:
        return (
            self.browser_paths is not None
            and scope["method"] in ("GET", "HEAD")
            and self.browser_paths.match(scope["path"]) is not None
        )

    def _key_index(self, scope: Scope) -> int:
        """The presented key's index; -1 for none, -2 for a malformed or unknown one."""
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return -2
                index = self._match(token.strip())
                return index if index >= 0 else -2
        if self._is_browser_page(scope):
            token = QueryParams(scope.get("query_string", b"").decode("latin-1")).get("key")
            if token is None or not token.strip():
                return -1
            index = self._match(token.strip())
            return index if index >= 0 else -2
        return -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.open_paths or path.startswith(self.open_prefixes):
            await self.app(scope, receive, send)
            return
        index = self._key_index(scope)
        if index >= 0:
            context = request_context(scope)
            context.caller = self.fingerprints[index]
            context.admin = self.roles[index]
        admin_only = (
            self.admin_paths is not None
            and scope["method"] not in ("GET", "HEAD")
            # Cheap tests first: the regex is not free, and predictions never need it.
            and (path.startswith(ADMIN_PREFIX) or path.endswith(ADMIN_SUFFIX))
            and self.admin_paths.match(path) is not None
        )
        if admin_only:
            if index >= 0 and self.roles[index]:
                await self.app(scope, receive, send)
                return
            if index >= 0:
                await render_error(
                    Forbidden(
                        "this operation needs an admin key (SYNERGY_ADMIN_API_KEYS); prediction "
                        "keys cannot change the models served"
                    )
                )(scope, receive, send)
                return
        elif index >= 0 or (not self.require_key and index == -1):
            await self.app(scope, receive, send)
            return
        if self._is_browser_page(scope) and _accepts_html(scope):
            from app.report import login_page  # the page module only where it is needed

            nonce = secrets.token_urlsafe(18)
            await HTMLResponse(
                login_page(scope.get("root_path", "") + scope["path"], nonce),
                status_code=401,
                headers={
                    "WWW-Authenticate": "Bearer",
                    "Content-Security-Policy": "default-src 'none'; style-src 'nonce-"
                    f"{nonce}'; form-action 'self'; frame-ancestors 'none'",
                    "Referrer-Policy": "no-referrer",
                    "Cache-Control": "no-store",
                },
            )(scope, receive, send)
            return
        await render_error(
            Unauthorized(
                "missing or wrong API key: send 'Authorization: Bearer <key>' (in Swagger UI, "
                "use the Authorize button)"
            )
        )(scope, receive, send)


def _accepts_html(scope: Scope) -> bool:
    """Whether the client asked for HTML by name (a browser navigating; API clients and
    `*/*` get the JSON error)."""
    for key, value in scope["headers"]:
        if key == b"accept":
            return b"text/html" in value
    return False
