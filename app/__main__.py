"""`python -m app`: run the service with uvicorn and a graceful SIGTERM drain.

On SIGTERM (or Ctrl-C): readiness turns 503 at once and new predictions get 503 (with
`Connection: close`, so load balancers and clients move on); requests already in flight finish
within `SYNERGY_SHUTDOWN_GRACE_PERIOD_S`. Requests still running then (a slow upload, a long
queue) get a JSON 503 and their connections close; the server stops and the process exits 0,
about a second after the grace period at most. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from types import FrameType

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from app.budget import limit_malloc_arenas
from app.logs import configure_logging, resolve_format
from app.main import create_app
from app.middleware import ServerState
from app.server import ConnectionLimits, bounded_protocol
from app.service import PredictionService
from app.settings import ConfigError, Settings, flat_fields, variable_of

log = logging.getLogger("synergy.server")

# After the grace period: how long cut-off requests get to send their 503, and then how long
# uvicorn waits for connections to close. Together they keep the exit within grace + 2 s.
CUT_OFF_WAIT_S = 0.5
CLOSE_WAIT_S = 1


class DrainingServer(uvicorn.Server):
    """uvicorn.Server that drains in-flight requests before it stops accepting connections."""

    def __init__(
        self,
        config: uvicorn.Config,
        service: PredictionService,
        state: ServerState,
        grace_period_s: float,
    ) -> None:
        super().__init__(config)
        self.service = service
        self.state = state
        self.grace_period_s = grace_period_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not calling super(): it records the signal and re-raises it after shutdown, which
        # would end the process with 128+SIGTERM instead of a clean exit 0.
        if self._draining or self._loop is None:
            self.should_exit = True
            self.force_exit = self._draining
            return
        self._draining = True
        # One deadline for the whole shutdown: the drain here, then the batchers' drain in the
        # lifespan get what is left of it, never a grace period each.
        self.state.shutdown_deadline = time.monotonic() + self.grace_period_s
        self.service.begin_drain()
        log.info(
            "signal %d: draining %d in-flight request(s), up to %.0fs",
            sig,
            self.state.in_flight,
            self.grace_period_s,
        )
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._drain()))  # type: ignore[union-attr]

    async def _drain(self) -> None:
        while self.state.in_flight and self.state.time_left_s(0.0) > 0:
            await asyncio.sleep(0.02)
        if self.state.in_flight:
            stopped = self.state.cut_off()
            log.warning("grace period over: %d request(s) still in flight got 503", stopped)
            # Their 503s are a few bytes each; a bound in case a client does not read them.
            deadline = time.monotonic() + CUT_OFF_WAIT_S
            while self.state.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        self.should_exit = True


def settings_help() -> str:
    """`python -m app --help`: what it does and every setting with its variable and default."""
    lines = [
        "usage: python -m app [--help]",
        "",
        "Serve the models of SYNERGY_MODELS_DIR over HTTP until SIGTERM or Ctrl-C.",
        "Every setting is an environment variable (see README.md, Settings):",
        "",
    ]
    for name, field in flat_fields():
        default = field.get_default(call_default_factory=True)
        shown = "(none)" if default in (None, [], {}) else str(default)
        text = f"  SYNERGY_{name.upper()}  [default: {shown}]"
        if field.description:
            text += f"\n      {field.description}"
        lines.append(text)
    return "\n".join(lines)


def _load_settings() -> Settings:
    """The settings, or SystemExit(2) with one line per invalid setting (no traceback)."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = variable_of(error["loc"])
            variable = f"{where}: " if where else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            print(f"error: invalid setting {variable}{message}", file=sys.stderr)
        raise SystemExit(2) from None
    except SettingsError as exc:  # a value that is not even JSON, e.g. SYNERGY_MODEL_BATCHING
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    """Read the settings, build the app, serve until a signal; 0 on a clean shutdown, 2 on
    a setting that cannot work (one line on stderr)."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--help"], ["-h"]):
        print(settings_help())
        return 0
    if args:
        print(
            f"error: unexpected argument {args[0]!r}; settings are environment variables, "
            "see python -m app --help",
            file=sys.stderr,
        )
        return 2
    settings = _load_settings()
    configure_logging(settings.logging.log_level, resolve_format(settings.logging.log_format))
    limit_malloc_arenas()
    sys.setswitchinterval(settings.serving.gil_switch_interval_ms / 1000)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=settings.serving.host,
        port=settings.serving.port,
        log_config=None,
        access_log=False,  # our middleware logs one JSON line per request
        loop="auto",  # uvloop when installed
        http=bounded_protocol(
            ConnectionLimits(
                max_connections=settings.connections.max_connections,
                max_header_bytes=settings.connections.max_header_bytes,
                max_header_count=settings.connections.max_header_count,
                header_timeout_s=settings.connections.header_timeout_s,
                body_timeout_s=settings.connections.body_timeout_s,
            )
        ),
        lifespan="on",
        # Our drain (above) spends the grace period; what uvicorn waits for after it is the
        # connections closing, which the cut-off has already answered.
        timeout_graceful_shutdown=CLOSE_WAIT_S,
        timeout_keep_alive=settings.connections.keep_alive_timeout_s,
        proxy_headers=False,
    )
    server = DrainingServer(
        config, app.state.service, app.state.server_state, settings.serving.shutdown_grace_period_s
    )
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
