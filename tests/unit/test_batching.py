"""The batcher with a fake model: exact splitting, limits, overload, errors, shutdown."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest

from app.batching import Batcher, BatchFunction
from app.errors import DeadlineExceeded, ModelFailed, Unavailable


class FakeModel:
    """Echoes each row (tagged), records every batch it saw, optionally slow or failing."""

    def __init__(self, delay_s: float = 0.0, fail_on: Any = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.batches: list[list[Any]] = []
        self.spans: list[tuple[float, float]] = []  # (start, end) of each batch
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, rows: list[Any]) -> list[Any]:
        started = time.perf_counter()
        with self.lock:
            self.batches.append(list(rows))
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        self.spans.append((started, time.perf_counter()))
        if self.fail_on is not None and self.fail_on in rows:
            raise ValueError(f"poison row {self.fail_on}")
        return [("out", row) for row in rows]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _started(model: BatchFunction, **kwargs: Any) -> Batcher:
    batcher = Batcher("fake", model, **kwargs)
    batcher.start()
    return batcher


@pytest.mark.anyio
async def test_mixed_sizes_split_back_exactly_under_200_callers() -> None:
    model = FakeModel(delay_s=0.001)
    batcher = await _started(
        model,
        max_batch_size=16,
        max_batch_wait_ms=2,
        max_queue_rows=10_000,
        max_queue_wait_ms=60_000,
    )
    rng = random.Random(7)
    requests = [
        [(caller, i) for i in range(rng.choice([1, 1, 2, 3, 7, 16, 40]))] for caller in range(200)
    ]

    async def call(rows: list[Any]) -> list[Any]:
        await asyncio.sleep(rng.random() * 0.01)
        return await batcher.predict(rows)

    results = await asyncio.gather(*(call(rows) for rows in requests))
    await batcher.stop()
    for rows, result in zip(requests, results, strict=True):
        assert result == [("out", row) for row in rows]
    assert sum(len(b) for b in model.batches) == sum(len(r) for r in requests)
    assert max(len(b) for b in model.batches) <= 16
    assert any(len(b) > 1 for b in model.batches), "nothing was batched"
    # Large requests were split across batches and small ones merged into one batch.
    assert any(len({row[0] for row in b}) > 1 for b in model.batches)


@pytest.mark.anyio
async def test_one_worker_thread_runs_every_batch_off_the_event_loop() -> None:
    model = FakeModel()
    batcher = await _started(model)
    await asyncio.gather(*(batcher.predict([i]) for i in range(50)))
    await batcher.stop()
    assert model.threads == {"batcher-fake"}


@pytest.mark.anyio
async def test_idle_model_takes_a_lone_request_at_once() -> None:
    batcher = await _started(FakeModel(), max_batch_size=64, max_batch_wait_ms=500)
    await batcher.predict([0])  # warm the thread
    started = time.perf_counter()
    assert await batcher.predict([1]) == [("out", 1)]
    elapsed = time.perf_counter() - started
    await batcher.stop()
    assert elapsed < 0.1, f"a lone request waited {elapsed:.3f}s for companions"


@pytest.mark.anyio
async def test_rows_queued_while_busy_wait_at_most_max_batch_wait() -> None:
    model = FakeModel(delay_s=0.05)
    batcher = await _started(model, max_batch_size=64, max_batch_wait_ms=30)
    first = asyncio.create_task(batcher.predict(["busy"]))
    await asyncio.sleep(0.01)  # the model is now busy with "busy"
    second = asyncio.create_task(batcher.predict(["a"]))
    await asyncio.gather(first, second)
    await batcher.stop()
    # "a" queued at ~10 ms; busy finishes at ~50 ms, past a's 30 ms window: a goes at once.
    assert model.batches == [["busy"], ["a"]]
    gap = model.spans[1][0] - model.spans[0][1]
    assert gap < 0.015, f"a waited {gap * 1000:.1f} ms after the model became free"


@pytest.mark.anyio
async def test_rows_queued_while_busy_are_held_for_companions_up_to_the_window() -> None:
    model = FakeModel(delay_s=0.02)
    batcher = await _started(model, max_batch_size=64, max_batch_wait_ms=100)
    first = asyncio.create_task(batcher.predict(["busy"]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.predict(["a"]))  # queued while busy, at ~10 ms
    await asyncio.sleep(0.03)  # busy is done at ~20 ms; a's window runs to ~110 ms
    third = asyncio.create_task(batcher.predict(["b"]))
    await asyncio.gather(first, second, third)
    await batcher.stop()
    assert model.batches == [["busy"], ["a", "b"]]
    waited = model.spans[1][0] - model.spans[0][1]
    assert 0.05 < waited < 0.2, f"a waited {waited * 1000:.0f} ms (window 100 ms)"


@pytest.mark.anyio
async def test_batch_goes_when_full_without_waiting_the_window() -> None:
    model = FakeModel(delay_s=0.05)
    batcher = await _started(model, max_batch_size=4, max_batch_wait_ms=5_000)
    first = asyncio.create_task(batcher.predict(["busy"]))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(batcher.predict([i])) for i in range(4)]
    started = time.perf_counter()
    await asyncio.gather(first, *rest)
    elapsed = time.perf_counter() - started
    await batcher.stop()
    assert model.batches[1] == [0, 1, 2, 3]
    assert elapsed < 1.0, "a full batch waited for the 5 s window"


@pytest.mark.anyio
async def test_full_queue_rejects_at_once_with_retry_after() -> None:
    model = FakeModel(delay_s=0.2)
    batcher = await _started(model, max_batch_size=2, max_queue_rows=4)
    running = asyncio.create_task(batcher.predict(["busy"]))
    await asyncio.sleep(0.02)
    queued = [asyncio.create_task(batcher.predict([i, i])) for i in range(2)]  # 4 rows queued
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    with pytest.raises(Unavailable) as excinfo:
        await batcher.predict(["one too many"])
    assert time.perf_counter() - started < 0.01
    assert excinfo.value.status_code == 503
    assert excinfo.value.headers["Retry-After"] == "1"
    assert "overloaded" in excinfo.value.message
    await asyncio.gather(running, *queued)  # the accepted ones still complete
    await batcher.stop()


@pytest.mark.anyio
async def test_a_request_larger_than_the_queue_gets_in_when_the_queue_is_empty() -> None:
    model = FakeModel(delay_s=0.05)
    batcher = await _started(model, max_batch_size=2, max_queue_rows=4)
    big = asyncio.create_task(batcher.predict(list(range(7))))
    await asyncio.sleep(0.01)
    with pytest.raises(Unavailable):  # the big one fills the queue now
        await batcher.predict(["more"])
    assert await big == [("out", i) for i in range(7)]
    assert max(len(b) for b in model.batches) == 2
    await batcher.stop()


@pytest.mark.anyio
async def test_model_error_fails_only_its_batch_and_the_worker_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = FakeModel(delay_s=0.02, fail_on="poison")
    batcher = await _started(model, max_batch_size=8, max_batch_wait_ms=1)
    blocker = asyncio.create_task(batcher.predict(["busy"]))
    await asyncio.sleep(0.005)
    same_batch = [asyncio.create_task(batcher.predict([row])) for row in ("poison", "x")]
    outcomes = await asyncio.gather(blocker, *same_batch, return_exceptions=True)
    assert outcomes[0] == [("out", "busy")]
    assert all(isinstance(o, ModelFailed) for o in outcomes[1:])
    # The client hears that the model failed; what failed goes to the server's log only.
    assert "poison row" not in str(outcomes[1]) and "logged" in str(outcomes[1])
    assert "poison row" in caplog.text
    assert await batcher.predict(["after"]) == [("out", "after")]
    await batcher.stop()


@pytest.mark.anyio
async def test_wrong_result_count_is_an_error_not_a_mis_split(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batcher = await _started(lambda rows: rows[:-1])
    with pytest.raises(ModelFailed, match="failed on this batch"):
        await batcher.predict([1, 2])
    assert "returned 1 results for 2 rows" in caplog.text
    await batcher.stop()


@pytest.mark.anyio
async def test_deadline_gives_504_and_skips_the_abandoned_rows() -> None:
    model = FakeModel(delay_s=0.2)
    batcher = await _started(model, max_batch_size=1)
    busy = asyncio.create_task(batcher.predict(["busy"]))
    await asyncio.sleep(0.01)
    with pytest.raises(DeadlineExceeded):
        await batcher.predict(["late"], timeout_s=0.05)
    await busy
    await batcher.predict(["next"])
    await batcher.stop()
    assert ["late"] not in model.batches


@pytest.mark.anyio
async def test_shutdown_fails_pending_callers_and_nobody_hangs() -> None:
    model = FakeModel(delay_s=0.1)
    batcher = await _started(model, max_batch_size=1)
    calls = [asyncio.create_task(batcher.predict([i])) for i in range(5)]
    await asyncio.sleep(0.02)
    await asyncio.wait_for(batcher.stop(drain_timeout_s=0), timeout=2)
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=2)
    assert outcomes[0] == [("out", 0)]  # the batch in progress finishes
    assert all(isinstance(o, Unavailable) for o in outcomes[1:])
    with pytest.raises(Unavailable):
        await batcher.predict(["after stop"])


@pytest.mark.anyio
async def test_drain_lets_queued_rows_finish() -> None:
    model = FakeModel(delay_s=0.02)
    batcher = await _started(model, max_batch_size=1)
    calls = [asyncio.create_task(batcher.predict([i])) for i in range(4)]
    await asyncio.sleep(0.005)
    await batcher.stop(drain_timeout_s=5)
    assert await asyncio.gather(*calls) == [[("out", i)] for i in range(4)]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Batcher("x", lambda rows: rows, max_batch_size=8, max_queue_rows=4)


@pytest.mark.anyio
async def test_an_error_for_one_row_fails_only_that_request() -> None:
    from app.errors import InvalidInput

    def model(rows: list[Any]) -> list[Any]:
        return [InvalidInput("bad row") if row == "bad" else ("out", row) for row in rows]

    batcher = await _started(model, max_batch_size=8)
    blocker = asyncio.create_task(batcher.predict(["first"]))
    calls = [asyncio.create_task(batcher.predict(rows)) for rows in (["a"], ["b", "bad"], ["c"])]
    outcomes = await asyncio.gather(blocker, *calls, return_exceptions=True)
    assert outcomes[1] == [("out", "a")] and outcomes[3] == [("out", "c")]
    assert isinstance(outcomes[2], InvalidInput)
    await batcher.stop()


def test_fair_shares_give_small_requests_all_they_want_and_split_the_rest() -> None:
    from app.batching.admission import fair_shares

    assert fair_shares([1000, 1, 1000, 3], 64) == [30, 1, 30, 3]
    assert fair_shares([5, 5], 64) == [5, 5]
    assert fair_shares([1] * 5, 3) == [1, 1, 1, 0, 0]
    assert sum(fair_shares([7, 100, 2, 40], 16)) == 16


@pytest.mark.anyio
async def test_a_small_request_is_interleaved_with_a_large_one_not_queued_behind_it() -> None:
    model = FakeModel(delay_s=0.005)
    batcher = await _started(model, max_batch_size=8, max_queue_wait_ms=60_000)
    big = asyncio.create_task(batcher.predict([("big", i) for i in range(200)]))
    await asyncio.sleep(0.002)  # the big one's first batch is being computed
    small = asyncio.create_task(batcher.predict([("small", 0)]))
    assert await small == [("out", ("small", 0))]
    assert not big.done(), "the small request waited for the whole large one"
    assert await big == [("out", ("big", i)) for i in range(200)]
    await batcher.stop()
    carrying = [i for i, batch in enumerate(model.batches) if ("small", 0) in batch]
    assert carrying and carrying[0] <= 2, carrying
    assert all(len(batch) <= 8 for batch in model.batches)


@pytest.mark.anyio
async def test_two_bulk_requests_share_the_model_and_both_get_in() -> None:
    model = FakeModel(delay_s=0.002)
    batcher = await _started(model, max_batch_size=16)
    await batcher.predict(list(range(16)))  # the throughput is measured from here on
    results = await asyncio.gather(
        *(batcher.predict([(caller, i) for i in range(300)], timeout_s=10) for caller in range(2)),
        *(batcher.predict([("one", i)], timeout_s=10) for i in range(5)),
    )
    await batcher.stop()
    assert results[0] == [("out", (0, i)) for i in range(300)]
    # Both bulk requests' rows went through the same batches, not one after the other.
    shared = [b for b in model.batches if {r[0] for r in b if isinstance(r, tuple)} >= {0, 1}]
    assert len(shared) >= 10, f"only {len(shared)} batches carried rows of both"


class GatedModel:
    """Sleeps a fixed time per batch while the gate is open; holds the batch while closed."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, rows: list[Any]) -> list[Any]:
        self.gate.wait(10)
        time.sleep(self.delay_s)
        return [("out", row) for row in rows]


@pytest.mark.anyio
async def test_admission_follows_the_expected_wait_and_503s_say_when_to_retry() -> None:
    model = GatedModel(delay_s=0.01)
    batcher = await _started(model, max_batch_size=8, max_queue_wait_ms=50)
    await batcher.predict(list(range(8)))  # 8 rows per ~10 ms: ~800 rows/s at most
    rate = batcher.throughput_rows_per_s
    assert rate is not None and 100 < rate <= 800

    model.gate.clear()  # the model is busy from now on: the queue only grows
    blocker = asyncio.create_task(batcher.predict(["busy"]))
    await asyncio.sleep(0.02)
    accepted, rejected = [], []
    for i in range(200):
        try:
            accepted.append(asyncio.create_task(batcher.predict([i])))
            await asyncio.sleep(0)  # let the request get in line
            if accepted[-1].done():
                accepted[-1].result()
        except Unavailable as exc:
            rejected.append(exc)
            accepted.pop()
    # Single rows get in while the rows ahead take at most 50 ms at the measured rate.
    assert 0 < len(accepted) <= 0.05 * rate + 2, (len(accepted), rate)
    assert rejected and all(int(e.headers["Retry-After"]) >= 1 for e in rejected)
    assert "would wait about" in rejected[0].message

    # A request that cannot finish within its deadline is refused at once, not answered late.
    started = time.perf_counter()
    with pytest.raises(Unavailable):
        await batcher.predict(list(range(2000)), timeout_s=0.5)
    assert time.perf_counter() - started < 0.1
    model.gate.set()
    await asyncio.gather(blocker, *accepted)
    await batcher.stop()


@pytest.mark.anyio
async def test_a_request_is_released_as_soon_as_it_is_answered() -> None:
    import gc
    import weakref

    class Row:
        pass

    batcher = await _started(lambda rows: [0] * len(rows), max_batch_size=4)
    row = Row()
    alive = weakref.ref(row)
    assert await batcher.predict([row, Row(), Row()], timeout_s=30) == [0, 0, 0]
    del row
    for _ in range(100):  # the worker thread lets go of its batch within microseconds
        gc.collect()
        if alive() is None:
            break
        await asyncio.sleep(0.01)
    assert alive() is None, "the batcher still holds a finished request (and its rows)"
    await batcher.stop()


class StagedModel:
    """A batch function in two stages, as `app.batch_function.StagedBatch`: `start` records
    the batch and hands its computing to another thread (like XLA's), the function it returns
    waits for it. Records the order of starts and finishes."""

    def __init__(self, delay_s: float = 0.02, fail_start_on: Any = None) -> None:
        self.delay_s = delay_s
        self.fail_start_on = fail_start_on
        self.events: list[tuple[str, int]] = []
        self.batches: list[list[Any]] = []

    def start(self, rows: list[Any]) -> Any:
        number = len(self.batches)
        self.batches.append(list(rows))
        self.events.append(("start", number))
        if self.fail_start_on is not None and self.fail_start_on in rows:
            raise ValueError("poison row")
        done = threading.Event()
        timer = threading.Timer(self.delay_s, done.set)
        timer.start()

        def finish() -> list[Any]:
            assert done.wait(5)
            self.events.append(("finish", number))
            if "bad-finish" in rows:
                raise ValueError("poison row")
            return [("out", row) for row in rows]

        return finish

    def __call__(self, rows: list[Any]) -> list[Any]:
        result: list[Any] = self.start(rows)()
        return result


@pytest.mark.anyio
async def test_with_a_backlog_the_next_batch_starts_before_the_last_one_finishes() -> None:
    model = StagedModel()
    batcher = await _started(model, max_batch_size=4, max_queue_wait_ms=60_000)
    rows = list(range(16))  # four full batches queued at once: a backlog
    assert await batcher.predict(rows) == [("out", row) for row in rows]
    await batcher.stop()
    assert [len(batch) for batch in model.batches] == [4, 4, 4, 4]
    # Batch n+1 is started while batch n is in flight, and they finish in order.
    assert model.events == [
        ("start", 0),
        ("start", 1),
        ("finish", 0),
        ("start", 2),
        ("finish", 1),
        ("start", 3),
        ("finish", 2),
        ("finish", 3),
    ]


@pytest.mark.anyio
async def test_without_a_backlog_staged_batches_go_one_at_a_time_and_wait_for_companions() -> None:
    model = StagedModel(delay_s=0.03)
    batcher = await _started(model, max_batch_size=64, max_batch_wait_ms=100)
    first = asyncio.create_task(batcher.predict(["busy"]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(batcher.predict(["a"]))  # queued while busy: not a backlog
    await asyncio.sleep(0.04)
    third = asyncio.create_task(batcher.predict(["b"]))  # within a's window
    await asyncio.gather(first, second, third)
    await batcher.stop()
    assert model.batches == [["busy"], ["a", "b"]]
    assert model.events == [("start", 0), ("finish", 0), ("start", 1), ("finish", 1)]


@pytest.mark.anyio
async def test_a_staged_batch_that_fails_to_start_or_finish_fails_its_requests_only() -> None:
    model = StagedModel(fail_start_on="bad-start")
    batcher = await _started(model, max_batch_size=2, max_queue_wait_ms=60_000)
    # A backlog of six requests: batches are started while others are in flight; the one
    # holding "bad-start" fails when started, the one holding "bad-finish" when finished.
    requests = [["a"], ["bad-start"], ["b"], ["bad-finish"], ["c"], ["d"]]
    results = await asyncio.gather(
        *(batcher.predict(rows) for rows in requests), return_exceptions=True
    )
    await batcher.stop()
    failed = [b for b in model.batches if {"bad-start", "bad-finish"} & set(b)]
    assert len(failed) == 2  # the two poison rows went to two batches
    for rows, result in zip(requests, results, strict=True):
        if any(rows[0] in batch for batch in failed):
            assert isinstance(result, ModelFailed), (rows, result)
        else:
            assert result == [("out", rows[0])], (rows, result)
    assert sum(isinstance(result, list) for result in results) >= 2
