"""Triton's `GRPCInferenceService` (the Open Inference Protocol over gRPC): a thin peer of
the REST V2 routes over the same core.

Every call goes through `_observed`: a `RequestContext` made from the call's metadata
(`x-request-id`, and `x-model-version`, `x-model-label`, `x-routing-key`, the metadata
equivalents of the REST routing headers) and its deadline, counted in flight for the drain,
recorded like an HTTP request (metrics with `protocol="grpc"`, live stats, one access log
line), and its ServingError answered with the matching status code and the service's own
message (`app.rpc.status`). Inference is `core.select` -> `app.rpc.tensors.decode_request` ->
the version's adapter -> `core.infer` -> `encode_response`: the version selection, traffic
split, shadow, admission, deadline, payload log and prediction store are the core's, as on
REST. The model repository, configuration and statistics RPCs answer from the same functions
as their REST routes.

RPCs not listed here (shared memory, trace and log settings) answer UNIMPLEMENTED (the
generated base class).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format

from app import __version__
from app.codecs.v2 import EXTENSIONS, SERVER_NAME, takes_named_inputs
from app.context import CLIENT_REQUEST_ID, ROUTING_HEADERS, RequestContext, new_request_id
from app.core import InferenceCore
from app.errors import BadRequest, ServingError
from app.middleware import RequestRecorder, ServerState, token_fingerprint
from app.protocols import triton
from app.protocols.tensors import model_metadata, output_tensors, parse_version, tensor_error
from app.repository import ModelState
from app.repository.control import RepositoryControl
from app.rpc import status
from app.rpc.generated import grpc_service_pb2 as pb
from app.rpc.generated import grpc_service_pb2_grpc as pb_grpc
from app.rpc.generated import model_config_pb2
from app.rpc.tensors import (
    DecodedFeatures,
    DecodedTensor,
    decode_named_request,
    decode_request,
    encode_response,
)
from app.tasks import output_names

log = logging.getLogger(__name__)

T = TypeVar("T")
SERVICE_NAME = "inference.GRPCInferenceService"
_ROUTING_KEYS = {key.decode() for key in ROUTING_HEADERS}
# Requests of one ModelStreamInfer call in the core at once.
STREAM_WINDOW = 64


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The RPCs of `inference.GRPCInferenceService` this server implements."""

    def __init__(
        self,
        core: InferenceCore,
        server_ready: Callable[[], bool],
        repository: RepositoryControl,
        state: ServerState,
        recorder: RequestRecorder,
        *,
        keyed: bool = False,
    ) -> None:
        # With keys set, a call's key names its caller (feedback ownership, as on REST).
        self.keyed = keyed
        self.core = core
        self.server_ready = server_ready
        self.registry = core.registry
        self.limits = core.limits
        self.repository = repository
        self.state = state
        self.recorder = recorder

    # ------------------------------------------------------------------ every call
    def _context(self, call: grpc.aio.ServicerContext[Any, Any], rpc: str) -> RequestContext:
        arrived = time.perf_counter()
        request_id = caller = ""
        routing: list[tuple[bytes, bytes]] | None = None
        for key, value in call.invocation_metadata() or ():
            if not isinstance(value, str):
                continue
            if key == "x-request-id" and CLIENT_REQUEST_ID.match(value):
                request_id = value
            elif key == "authorization" and self.keyed:
                caller = token_fingerprint(value.partition(" ")[2].strip())
            elif key in _ROUTING_KEYS:
                routing = [*(routing or ()), (key.encode(), value.encode("latin-1", "replace"))]
        context = RequestContext(request_id=request_id or new_request_id(), arrived=arrived)
        context.endpoint = rpc
        context.protocol = "grpc"
        context.caller = caller
        remaining = call.time_remaining()
        if remaining is not None:
            context.client_deadline = arrived + remaining
        if routing is not None:
            context.route_headers(routing)
        return context

    async def _observed(
        self,
        rpc: str,
        call: grpc.aio.ServicerContext[Any, Any],
        handler: Callable[[RequestContext], Awaitable[T]],
        *,
        context: RequestContext | None = None,
        abort: bool = True,
    ) -> T:
        """Run `handler` for one call (or one request of a stream, with `abort=False`: its
        ServingError is raised for the stream to answer) and record it."""
        context = context or self._context(call, rpc)
        code = grpc.StatusCode.OK
        error: ServingError | None = None
        self.state.in_flight += 1
        try:
            return await handler(context)
        except ServingError as exc:
            code, error = status.grpc_code(exc), exc
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            log.error("unhandled error in %s (request %s)", rpc, context.request_id, exc_info=exc)
            code = grpc.StatusCode.INTERNAL
            error = ServingError(
                f"internal server error (request id {context.request_id}); the server logged "
                "the details"
            )
        finally:
            self.state.in_flight -= 1
            context.status = status.http_status(code)
            context.release()
            self.recorder.record(
                context,
                time.perf_counter() - context.arrived,
                rpc,
                "POST",
                f"/{SERVICE_NAME}/{rpc}",
                protocol="grpc",
                grpc_status=code.name,
            )
        assert error is not None
        if not abort:
            raise error
        await call.abort(
            code,
            error.message,
            (("x-request-id", context.request_id), *status.trailing_metadata(error)),
        )
        raise AssertionError("abort() raises")  # pragma: no cover

    # ------------------------------------------------------------------ health and metadata
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerLiveResponse:
        async def handle(_: RequestContext) -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=True)

        return await self._observed("ServerLive", context, handle)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerReadyResponse:
        async def handle(_: RequestContext) -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=self.server_ready())

        return await self._observed("ServerReady", context, handle)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelReadyResponse:
        async def handle(_: RequestContext) -> pb.ModelReadyResponse:
            # As Triton: an unknown model or version is not ready (no error).
            try:
                entry = self.registry.find(
                    request.name,
                    parse_version(request.name, request.version or None),
                )
            except ServingError:
                return pb.ModelReadyResponse(ready=False)
            ready = entry.state is ModelState.READY and not self.core.draining
            return pb.ModelReadyResponse(ready=ready)

        return await self._observed("ModelReady", context, handle)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerMetadataResponse:
        async def handle(_: RequestContext) -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(
                name=SERVER_NAME, version=__version__, extensions=EXTENSIONS
            )

        return await self._observed("ServerMetadata", context, handle)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelMetadataResponse:
        async def handle(_: RequestContext) -> pb.ModelMetadataResponse:
            metadata = model_metadata(self.core, request.name, request.version or None)
            return pb.ModelMetadataResponse(
                name=metadata["name"],
                versions=metadata["versions"],
                platform=metadata["platform"],
                inputs=[_tensor_metadata(t) for t in metadata["inputs"]],
                outputs=[_tensor_metadata(t) for t in metadata["outputs"]],
            )

        return await self._observed("ModelMetadata", context, handle)

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelConfigResponse:
        async def handle(_: RequestContext) -> pb.ModelConfigResponse:
            config = triton.model_config(self.core, request.name, request.version or None)
            parsed = json_format.ParseDict(config, model_config_pb2.ModelConfig())
            return pb.ModelConfigResponse(config=parsed)

        return await self._observed("ModelConfig", context, handle)

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelStatisticsResponse:
        async def handle(_: RequestContext) -> pb.ModelStatisticsResponse:
            statistics = triton.model_statistics(
                self.core, request.name or None, request.version or None
            )
            response = pb.ModelStatisticsResponse()
            # Triton's message has no `shadow_stats` (a version's shadow copies, counted apart
            # from its own figures): REST's statistics carry it, gRPC's leave it out.
            json_format.ParseDict(statistics, response, ignore_unknown_fields=True)
            return response

        return await self._observed("ModelStatistics", context, handle)

    # ------------------------------------------------------------------ repository
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RepositoryIndexResponse:
        async def handle(_: RequestContext) -> pb.RepositoryIndexResponse:
            return pb.RepositoryIndexResponse(
                models=[
                    pb.RepositoryIndexResponse.ModelIndex(**model)
                    for model in self.repository.index(ready_only=request.ready)
                ]
            )

        return await self._observed("RepositoryIndex", context, handle)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RepositoryModelLoadResponse:
        async def handle(_: RequestContext) -> pb.RepositoryModelLoadResponse:
            if request.parameters:
                raise BadRequest(
                    "load parameters (a configuration or files to override) are not supported;"
                    " put the version in the models folder and load it by name"
                )
            await self.repository.load(request.model_name)
            return pb.RepositoryModelLoadResponse()

        return await self._observed("RepositoryModelLoad", context, handle)

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RepositoryModelUnloadResponse:
        async def handle(_: RequestContext) -> pb.RepositoryModelUnloadResponse:
            await self.repository.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return await self._observed("RepositoryModelUnload", context, handle)

    # ------------------------------------------------------------------ inference
    async def infer(
        self, request: pb.ModelInferRequest, context: RequestContext
    ) -> pb.ModelInferResponse:
        """One infer request through the core (the protocol-neutral part of both RPCs)."""
        core = self.core
        version = parse_version(request.model_name, request.model_version or None)
        entry = core.select(request.model_name, version, context)
        adapter, card = entry.kind, entry.card
        spec, features = adapter.tensor_spec, adapter.feature_specs
        decoded: DecodedTensor | DecodedFeatures
        try:
            if takes_named_inputs([t.name for t in request.inputs], spec, features):
                decoded = decode_named_request(
                    request,
                    features,
                    entry.name,
                    self.limits.max_instances,
                    output_names(card),
                    spec,
                )
            else:
                decoded = decode_request(
                    request, spec, entry.name, self.limits.max_instances, output_names(card)
                )
            make_rows = functools.partial(decoded.rows, adapter)
            if decoded.rows_off_loop(adapter):
                rows = await core.off_loop(make_rows, context)
            else:
                rows = make_rows(None)
            probabilities = await core.infer(entry, rows, context)
        except ServingError as exc:
            raise tensor_error(exc, adapter.tensor_spec.name) from None
        return encode_response(
            entry.name,
            entry.version,
            request.id,
            output_tensors(card, decoded.outputs, probabilities, context.warnings),
            decoded.raw,
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelInferResponse:
        return await self._observed(
            "ModelInfer", context, lambda request_context: self.infer(request, request_context)
        )

    async def ModelStreamInfer(
        self,
        request_iterator: AsyncIterator[pb.ModelInferRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Triton's stream: one `ModelStreamInferResponse` per request, in the order of the
        requests; a request that fails answers with its `error_message` (and its id) and the
        stream goes on. Up to STREAM_WINDOW requests of a stream are in the core at once (so
        they batch together); a client that sends faster waits for the first answers."""
        window: asyncio.Queue[asyncio.Future[pb.ModelStreamInferResponse] | None]
        window = asyncio.Queue(maxsize=STREAM_WINDOW)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await window.put(asyncio.ensure_future(self._stream_one(request, context)))
            finally:
                await window.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while (answer := await window.get()) is not None:
                yield await answer
            await reader  # the request stream's own error, if any
        finally:
            reader.cancel()
            while not window.empty():
                pending = window.get_nowait()
                if pending is not None:
                    pending.cancel()

    async def _stream_one(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelStreamInferResponse:
        try:
            response = await self._observed(
                "ModelStreamInfer",
                context,
                lambda request_context: self.infer(request, request_context),
                abort=False,
            )
        except ServingError as exc:
            return pb.ModelStreamInferResponse(
                error_message=exc.message,
                infer_response=pb.ModelInferResponse(
                    model_name=request.model_name,
                    model_version=request.model_version,
                    id=request.id,
                ),
            )
        return pb.ModelStreamInferResponse(infer_response=response)


def _tensor_metadata(tensor: dict[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
    )
