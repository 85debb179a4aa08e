"""The lines a person starting the server looks for: what is loading, and one line when it is
ready, naming the models and the addresses to open. Logged like every other line (text at a
terminal, JSON with the same facts as fields in a container)."""

from __future__ import annotations

import logging
import time

from app.repository import ModelState
from app.service import PredictionService
from app.settings import ServingSettings

log = logging.getLogger("synergy.server")

# Where a browser on this machine reaches a server bound to every interface.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}


def base_url(serving: ServingSettings) -> str:
    """The address to open in a browser for these settings."""
    host = _ANY_ADDRESS.get(serving.host, serving.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{serving.port}"


def ready_line(service: PredictionService, serving: ServingSettings, elapsed_s: float) -> str:
    """`ready: 4 models (...) in 14.2s; API docs ...; report pages ...` (or what failed)."""
    entries = list(service.registry)
    ready = sorted(f"{e.name} v{e.version}" for e in entries if e.state is ModelState.READY)
    failed = [e for e in entries if e.state is ModelState.FAILED]
    url = base_url(serving)
    models = len({e.name for e in entries if e.state is ModelState.READY})
    head = "ready" if service.readiness()[0] else "NOT ready"
    line = (
        f"{head}: {models} model{'s' if models != 1 else ''} ({', '.join(ready) or 'none'}) "
        f"in {elapsed_s:.1f}s; API docs {url}/docs; report pages "
        f"{url}/v1/models/<name>/report"
    )
    if failed:
        reasons = "; ".join(f"{e.name} v{e.version}: {e.reason}" for e in failed)
        line += f"; FAILED to load: {reasons} (see {url}/health/ready)"
    return line


async def announce_ready(
    service: PredictionService, serving: ServingSettings, loading_started: float
) -> None:
    """Log what is loading now, and the ready line once start-up loading has settled."""
    names = sorted({e.name for e in service.registry})
    log.info(
        "loading %d model%s (%s); the server answers /health/live now, predictions once "
        "each model is ready",
        len(names),
        "s" if len(names) != 1 else "",
        ", ".join(names) or "none: is SYNERGY_MODELS_DIR right?",
    )
    await service.wait_loaded()
    line = ready_line(service, serving, time.monotonic() - loading_started)
    failed = any(e.state is ModelState.FAILED for e in service.registry)
    log.log(
        logging.WARNING if failed or not service.readiness()[0] else logging.INFO,
        line,
        extra={"fields": {"event": "ready", "docs_url": f"{base_url(serving)}/docs"}},
    )
