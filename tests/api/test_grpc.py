"""gRPC calls through the in-process app (its lifespan runs the gRPC server on the app's own
event loop): the client's deadline reaches the batcher, a cancelled call's rows are never
computed, overload is UNAVAILABLE with the retry delay, and each call is counted."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from app.rpc.generated import grpc_service_pb2 as pb
from app.rpc.generated import grpc_service_pb2_grpc as pb_grpc
from tests.conftest import COMMITTED_MODELS, running_app
from tests.e2e.conftest import free_port


class GatedModel:
    """Wraps a runtime's predict: each call waits for the gate, and the rows are counted."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predict_ = predict
        self.gate = threading.Event()
        self.rows = 0
        self.entered = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        self.rows += len(batch)
        return self.predict_(batch)


@pytest.fixture(scope="module")
def iris_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("iris-models")
    shutil.copytree(COMMITTED_MODELS / "iris-knn", folder / "iris-knn")
    return folder


@pytest.fixture(scope="module")
def app(iris_only: Path) -> Iterator[tuple[Any, str]]:
    port = free_port()
    batching = {"iris-knn": {"max_batch_size": 1, "max_queue_rows": 1}}
    with running_app(iris_only, grpc_port=port, model_batching=batching) as client:
        yield client, f"127.0.0.1:{port}"


@pytest.fixture
def gated(app: tuple[Any, str]) -> Iterator[GatedModel]:
    client, _ = app
    entry = client.app.state.service.registry.get_ready("iris-knn")
    runtime = entry.model
    gated = GatedModel(runtime.predict)
    runtime.predict = gated
    try:
        yield gated
    finally:
        gated.gate.set()
        del runtime.predict  # the class's method again


@pytest.fixture
def stub(app: tuple[Any, str]) -> Iterator[Any]:
    with grpc.insecure_channel(app[1]) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]


def _request(request_id: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris-knn", id=request_id)
    request.inputs.add(name="features", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(np.array([5.1, 3.5, 1.4, 0.2], "<f4").tobytes())
    return request


def _count(client: Any, status: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if (
            line.startswith("synergy_requests_total{")
            and 'endpoint="ModelInfer"' in line
            and 'protocol="grpc"' in line
            and f'status="{status}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def _batcher(client: Any) -> Any:
    return client.app.state.service.registry.get_ready("iris-knn").batcher


def test_an_expired_call_is_dropped_before_inference(
    app: tuple[Any, str], gated: GatedModel, stub: Any
) -> None:
    client, _ = app
    busy = stub.ModelInfer.future(_request("busy"))  # takes the worker, waits at the gate
    assert gated.entered.wait(30)
    before = _count(client, "504") + _count(client, "499")
    with pytest.raises(grpc.RpcError) as expired:
        stub.ModelInfer(_request("late"), timeout=0.5)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server let go of it (its deadline passed in the queue, or the call was cancelled):
    _wait_for(lambda: _count(client, "504") + _count(client, "499") > before, "recorded")
    gated.gate.set()
    assert busy.result(timeout=30).id == "busy"
    assert gated.rows == 1  # the expired call's row was never computed


def test_a_cancelled_call_stops_its_work(
    app: tuple[Any, str], gated: GatedModel, stub: Any
) -> None:
    client, _ = app
    busy = stub.ModelInfer.future(_request("busy"))
    assert gated.entered.wait(30)
    before = _count(client, "499")
    cancelled = stub.ModelInfer.future(_request("cancelled"))
    _wait_for(lambda: _batcher(client).queued_rows == 1, "queued")
    cancelled.cancel()
    _wait_for(lambda: _count(client, "499") > before, "the cancellation reached the handler")
    assert _batcher(client).queued_rows == 0  # its row left the queue
    gated.gate.set()
    assert busy.result(timeout=30).id == "busy"
    assert gated.rows == 1


def test_overload_is_unavailable_with_the_retry_delay(
    app: tuple[Any, str], gated: GatedModel, stub: Any
) -> None:
    client, _ = app
    busy = stub.ModelInfer.future(_request("busy"))
    assert gated.entered.wait(30)
    queued = stub.ModelInfer.future(_request("queued"))
    _wait_for(lambda: _batcher(client).queued_rows == 1, "queued")
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(_request("refused"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "overloaded" in refused.value.details()
    trailing = dict(refused.value.trailing_metadata())
    assert trailing["retry-after"] == "1" and trailing["grpc-retry-pushback-ms"] == "1000"
    assert trailing["x-request-id"]
    gated.gate.set()
    assert busy.result(timeout=30).id == "busy" and queued.result(timeout=30).id == "queued"


def test_a_client_deadline_shortens_the_servers(app: tuple[Any, str]) -> None:
    from app.context import RequestContext

    client, _ = app
    core = client.app.state.service.core
    now = time.perf_counter()
    context = RequestContext(arrived=now)
    assert core.remaining_s(context) == pytest.approx(10.0, abs=0.5)  # the server's 10 s
    context.client_deadline = now + 0.25
    assert core.remaining_s(context) <= 0.25


def test_inference_calls_are_requested_ahead_of_the_event_loop(
    app: tuple[Any, str], stub: Any
) -> None:
    """app.rpc.accept overrides a method of grpcio's serving loop that is not public API: after
    a call, SYNERGY_GRPC_ACCEPT_AHEAD (64) ModelInfer calls are requested from the core ahead.
    A grpcio release that renamed the method would leave the override unused: this fails."""
    client, _ = app
    stub.ModelInfer(_request("ahead"), timeout=30)
    ahead = client.app.state.grpc_server.calls_ahead()
    assert ahead == {"/inference.GRPCInferenceService/ModelInfer": 64}
