"""grpc.aio's own per-call ceiling: a server whose ModelInfer answers an empty message at once.

    python -m bench.grpc_empty PORT    (from the repository root)

The same library, version and event loop (uvloop) as the service's gRPC server, no protobuf
parsing, no model, nothing of this project: what `bench/grpc.py` reports as "grpc.aio empty"
next to the service's gRPC figures, so that the library's per-call cost on a machine is
measured, not assumed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import uvloop


async def _empty(request: bytes, context: Any) -> bytes:
    return b""


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(_empty)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "inference.GRPCInferenceService", {"ModelInfer": handler}
            )
        ]
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(serve(int(sys.argv[1])))
