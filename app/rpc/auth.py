"""API keys on gRPC: `authorization: Bearer <key>` metadata, with an explicit policy for
every RPC the server answers.

Deny by default, as on REST (`app.middleware.ApiKeyMiddleware`): an RPC not listed in
`OPEN_RPCS` needs a key, so a service added later is protected. Open, like their REST
counterparts (`/health/*`, `/v2/health/*`, `/openapi.json`):

- `grpc.health.v1.Health/*`: Kubernetes' gRPC probe and load balancers send no key;
- `inference.GRPCInferenceService/ServerLive` and `ServerReady`: the V2 health RPCs;
- server reflection: it describes the API (as the OpenAPI document does), never its data.

Everything else (inference, metadata, configuration, statistics, the repository) needs a key.
A refused call gets UNAUTHENTICATED with the REST 401's words. With admin keys set
(docs/security.md), `RepositoryModelLoad` and `RepositoryModelUnload` need one: a prediction
key gets PERMISSION_DENIED, as REST's 403; admin keys work wherever a prediction key does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from app.context import RequestContext, new_request_id
from app.middleware import RequestRecorder, key_index

HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = (
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
OPEN_RPCS = frozenset(
    {
        f"/{HEALTH_SERVICE}/Check",
        f"/{HEALTH_SERVICE}/Watch",
        f"/{HEALTH_SERVICE}/List",
        "/inference.GRPCInferenceService/ServerLive",
        "/inference.GRPCInferenceService/ServerReady",
        *(f"/{service}/ServerReflectionInfo" for service in REFLECTION_SERVICES),
    }
)
ADMIN_RPCS = frozenset(
    {
        "/inference.GRPCInferenceService/RepositoryModelLoad",
        "/inference.GRPCInferenceService/RepositoryModelUnload",
    }
)
ADMIN_MESSAGE = (
    "this operation needs an admin key (SYNERGY_ADMIN_API_KEYS); prediction keys cannot "
    "change the models served"
)
MESSAGE = (
    "missing or wrong API key: send the metadata 'authorization: Bearer <key>' (tritonclient: "
    "headers={'authorization': 'Bearer <key>'})"
)


def is_open(method: str) -> bool:
    """Whether the RPC (`/package.Service/Method`) may be called without a key."""
    return method in OPEN_RPCS


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls to RPCs that need a key and carry none, or a wrong one, and calls to the
    admin RPCs with a prediction key when admin keys are set."""

    def __init__(
        self,
        key_digests: list[bytes],
        recorder: RequestRecorder | None = None,
        admin_digests: list[bytes] | None = None,
    ) -> None:
        admin_digests = admin_digests or []
        self.digests = [*key_digests, *admin_digests]
        self.roles = [False] * len(key_digests) + [True] * len(admin_digests)
        # Only admin keys set: every RPC but the admin ones is open (as on REST).
        self.require_key = bool(key_digests)
        self.admin_enforced = bool(admin_digests)
        self.recorder = recorder

    def _key_index(self, metadata: Any) -> int:
        """The presented key's index; -1 for none, -2 for a malformed or unknown one."""
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return -2
                index = key_index(self.digests, token.strip())
                return index if index >= 0 else -2
        return -1

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        if is_open(method):
            return await continuation(handler_call_details)
        index = self._key_index(handler_call_details.invocation_metadata)
        if self.admin_enforced and method in ADMIN_RPCS:
            if index >= 0 and self.roles[index]:
                return await continuation(handler_call_details)
            if index >= 0:
                handler = await continuation(handler_call_details)
                return self._refusal(
                    method, handler, grpc.StatusCode.PERMISSION_DENIED, 403, ADMIN_MESSAGE
                )
        elif index >= 0 or (not self.require_key and index == -1):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        return self._refusal(method, handler, grpc.StatusCode.UNAUTHENTICATED, 401, MESSAGE)

    def _refusal(
        self,
        method: str,
        handler: grpc.RpcMethodHandler | None,
        code: grpc.StatusCode,
        http_status: int,
        message: str,
    ) -> grpc.RpcMethodHandler:
        """A handler of the same kind as `handler` that answers `code` with `message`, counted
        and logged like any call (as REST's 401s and 403s are)."""
        recorder = self.recorder
        # An unknown method's name is the client's to choose: not a metric label.
        endpoint = method.rsplit("/", 1)[-1] if handler is not None else "unmatched"

        async def refuse(_: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            if recorder is not None:
                call = RequestContext(request_id=new_request_id(), arrived=time.perf_counter())
                call.status = http_status
                recorder.record(
                    call,
                    0.0,
                    endpoint,
                    "POST",
                    method,
                    protocol="grpc",
                    grpc_status=code.name,
                )
            await context.abort(code, message)

        return _same_kind(handler, refuse)


def _same_kind(handler: grpc.RpcMethodHandler | None, refuse: Any) -> grpc.RpcMethodHandler:
    """`refuse` as a handler of the same kind (unary/streaming) as `handler`."""
    if handler is None or not (handler.request_streaming or handler.response_streaming):
        return grpc.unary_unary_rpc_method_handler(refuse)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    return grpc.unary_stream_rpc_method_handler(refuse)
