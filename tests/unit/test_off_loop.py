"""Work off the event loop stops with its request: deadline, client gone (issue 13)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app.budget import ClientDisconnected, RequestBudget
from app.context import RequestContext
from app.errors import DeadlineExceeded
from app.metrics import Metrics
from app.repository import ModelRegistry, VersionPolicy
from app.service import PredictionService
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _service(tmp_path: Path, **settings: Any) -> PredictionService:
    registry = ModelRegistry.scan(tmp_path, VersionPolicy())
    return PredictionService(make_settings(tmp_path, **settings), registry, Metrics())


class EndlessDecode:
    """A job that would run for a minute, checking its budget between steps like the image
    decoders do; records that it stopped, and on which thread it ran."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.thread = ""
        self.steps = 0

    def __call__(self, budget: RequestBudget) -> None:
        self.thread = threading.current_thread().name
        try:
            for self.steps in range(60_000):
                budget.check()
                time.sleep(0.001)
        finally:
            self.stopped.set()


async def test_a_client_that_hangs_up_stops_the_decoding(tmp_path: Path) -> None:
    service = _service(tmp_path)
    hung_up = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await hung_up.wait()
        return {"type": "http.disconnect"}

    job = EndlessDecode()
    context = RequestContext(arrived=time.perf_counter())
    call = asyncio.create_task(service.core.off_loop(job, context, receive))
    await asyncio.sleep(0.05)
    hung_up.set()
    with pytest.raises(ClientDisconnected):
        await asyncio.wait_for(call, timeout=5)
    assert await asyncio.to_thread(job.stopped.wait, 5), "the decoding went on"
    assert job.thread.startswith("decode")
    await service.stop(0)


async def test_the_deadline_counts_from_arrival_and_stops_the_decoding(tmp_path: Path) -> None:
    service = _service(tmp_path, request_timeout_ms=1000)
    job = EndlessDecode()
    # The request arrived 0.9 s ago (its body was slow to come): 0.1 s of its deadline is left.
    context = RequestContext(arrived=time.perf_counter() - 0.9)
    with pytest.raises(DeadlineExceeded):
        await asyncio.wait_for(service.core.off_loop(job, context), timeout=5)
    assert await asyncio.to_thread(job.stopped.wait, 5), "the decoding went on"
    assert job.steps < 10_000
    with pytest.raises(DeadlineExceeded):  # past its deadline already: nothing starts
        await service.core.off_loop(job, RequestContext(arrived=time.perf_counter() - 2))
    await service.stop(0)
