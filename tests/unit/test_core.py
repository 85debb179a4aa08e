"""The protocol-neutral core against a fake version: selection, inference through the batcher,
errors that carry a status and a neutral message, admission and the explanation verb."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.context import RequestContext
from app.core import VALUE_COUNT_SLACK
from app.errors import (
    DeadlineExceeded,
    InvalidInput,
    MalformedVersion,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from app.events import PredictionEvent
from tests.unit.fake_version import NAME, POISON, context, expected, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_select_hands_back_the_ready_version_and_records_it(tmp_path: Path) -> None:
    served = serve(tmp_path)
    try:
        pinned, request = context(), context()
        assert served.core.select(NAME, 1, pinned) is served.entry
        pinned.release()
        assert served.core.select(NAME, None, request) is served.entry
        # The request leases the version until it ends (a retired version waits for it).
        assert (request.model, request.version) == (NAME, 1)
        assert served.entry.leases.count == 1
        request.release()
        assert served.entry.leases.count == 0
    finally:
        await served.core.stop(1)


@pytest.mark.parametrize(
    ("name", "version", "header", "error", "status", "fragment"),
    [
        ("nope", None, None, NotFound, 404, "unknown model 'nope'"),
        (NAME, 7, None, NotFound, 404, "no version 7"),
        (NAME, None, "x", MalformedVersion, 400, "the X-Model-Version header: 'x' is not"),
        (NAME, None, "0", MalformedVersion, 400, "versions are integers from 1 to"),
    ],
)
async def test_select_refuses_with_a_status_and_a_message_of_no_protocol(
    tmp_path: Path,
    name: str,
    version: int | None,
    header: str | None,
    error: type[Exception],
    status: int,
    fragment: str,
) -> None:
    served = serve(tmp_path)
    try:
        request = context(pin_version=header)
        with pytest.raises(error) as raised:
            served.core.select(name, version, request)
        assert raised.value.status_code == status  # type: ignore[attr-defined]
        assert fragment in raised.value.message  # type: ignore[attr-defined]
        assert "instances" not in raised.value.message  # type: ignore[attr-defined]
    finally:
        await served.core.stop(1)


async def test_requests_go_through_the_batcher_and_split_back_exactly(tmp_path: Path) -> None:
    served = serve(tmp_path, max_batch_size=8, max_batch_wait_ms=5.0)
    core = served.core
    # Sums from -2.5 to 2.5 in steps of 0.25: each request's answers differ from the others'
    # by far more than the probability floor moves them (a mis-split would show).
    requests = [[[(i - 10) / 4, j / 4] for j in range(1 + i % 3)] for i in range(20)]
    events: list[PredictionEvent] = []
    core.subscribe(events.append)
    try:

        async def one(rows: list[list[float]]) -> np.ndarray:
            request = context()
            return await core.infer(core.select(NAME, None, request), rows, request)

        answers = await asyncio.gather(*(one(rows) for rows in requests))
    finally:
        await core.stop(1)
    for rows, answer in zip(requests, answers, strict=True):
        assert answer.shape == (len(rows), 2)
        np.testing.assert_allclose(answer, expected(rows), atol=1e-3)
    runtime = served.runtime
    assert sum(runtime.batches) == sum(len(rows) for rows in requests)
    assert max(runtime.batches) <= 8
    # The model ran on the version's batcher thread, never on the event loop's.
    assert runtime.threads and "MainThread" not in runtime.threads
    assert len(events) == len(requests)
    assert {event.model for event in events} == {NAME}
    assert sorted(len(event.rows) for event in events) == sorted(len(r) for r in requests)


async def test_a_row_the_model_cannot_compute_names_its_index_not_a_protocol(
    tmp_path: Path,
) -> None:
    served = serve(tmp_path)
    try:
        request = context()
        entry = served.core.select(NAME, None, request)
        with pytest.raises(InvalidInput) as raised:
            await served.core.infer(entry, [[1.0, 2.0], [POISON, 0.0]], request)
    finally:
        await served.core.stop(1)
    assert raised.value.status_code == 422
    assert raised.value.instance == 1
    # The protocol words the row (`instances[1]`, `input features[1]`); the core does not.
    assert raised.value.message.startswith("a = 999 is out of the range the model can compute")


async def test_a_request_past_its_deadline_is_refused_before_the_model(tmp_path: Path) -> None:
    served = serve(tmp_path, request_timeout_ms=1000)
    try:
        late = RequestContext(arrived=time.perf_counter() - 5)
        entry = served.core.select(NAME, None, context())
        with pytest.raises(DeadlineExceeded) as raised:
            await served.core.infer(entry, [[1.0, 2.0]], late)
    finally:
        await served.core.stop(1)
    assert raised.value.status_code == 504 and "1000 ms" in raised.value.message
    assert served.runtime.batches == []


async def test_after_the_drain_began_new_requests_are_refused(tmp_path: Path) -> None:
    served = serve(tmp_path)
    try:
        served.core.begin_drain()
        with pytest.raises(Unavailable) as raised:
            served.core.select(NAME, None, context())
    finally:
        await served.core.stop(1)
    assert raised.value.status_code == 503
    assert raised.value.headers["Connection"] == "close"


async def test_value_count_and_admission_refuse_before_parsing(tmp_path: Path) -> None:
    served = serve(tmp_path, max_instances=10, max_batch_size=4, max_queue_rows=4)
    core, entry = served.core, served.entry
    try:
        limit = 10 * 2  # ten instances of two features
        core.check_value_count(entry, limit + VALUE_COUNT_SLACK)  # within the slack: fine
        with pytest.raises(PayloadTooLarge) as too_many:
            core.check_value_count(entry, limit + VALUE_COUNT_SLACK + 1)
        assert too_many.value.status_code == 413
        assert "at most 10 instances" in too_many.value.message
        core.admit(entry, 4, context())  # an empty queue admits what fits
    finally:
        await core.stop(1)


async def test_explain_is_a_verb_of_the_core_with_its_own_limit(tmp_path: Path) -> None:
    served = serve(tmp_path, explain_max_instances=2)
    core = served.core
    try:
        request = context()
        entry = core.select(NAME, None, request)
        explanations: list[Any] = await core.explain(entry, [[1.0, 2.0]], request)
        with pytest.raises(PayloadTooLarge) as too_many:
            await core.explain(entry, [[1.0, 2.0]] * 3, context())
    finally:
        await core.stop(1)
    assert len(explanations) == 1
    assert "at most 2 per request" in too_many.value.message
