"""The HTTP protocol's hot-path changes (`app.server`), on an in-memory connection: a
response goes out in one write, and the read deadlines still fire after moving."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from app.server import ConnectionLimits, bounded_protocol

REQUEST = b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}"


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def _connection(
    header_timeout_s: float = 5.0, body_timeout_s: float = 5.0
) -> tuple[Any, _Transport]:
    limits = ConnectionLimits(
        max_connections=10,
        max_header_bytes=8192,
        max_header_count=50,
        header_timeout_s=header_timeout_s,
        body_timeout_s=body_timeout_s,
    )
    protocol_class = bounded_protocol(limits)
    config = uvicorn.Config(_answer, http=protocol_class, lifespan="off")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


def test_a_response_is_one_write_on_every_request_of_a_connection() -> None:
    async def scenario() -> list[bytes]:
        protocol, transport = _connection()
        for _ in range(3):
            protocol.data_received(REQUEST)
            for _ in range(20):
                await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport.writes

    writes = asyncio.run(scenario())
    assert len(writes) == 3, writes
    for write in writes:
        assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\nok")


def test_the_header_deadline_still_fires_after_requests_moved_it() -> None:
    async def scenario() -> list[bytes]:
        protocol, transport = _connection(header_timeout_s=0.2, body_timeout_s=5.0)
        protocol.data_received(REQUEST)  # answered; the deadline moved to the body's and back
        await asyncio.sleep(0.05)
        protocol.data_received(b"POST /x HTTP/1.1\r\nhost: t\r\n")  # headers never end
        await asyncio.sleep(0.6)
        return transport.writes

    writes = asyncio.run(scenario())
    assert len(writes) == 2, writes
    assert writes[1].startswith(b"HTTP/1.1 408 ")
    assert b"headers did not arrive within 0.2 s" in writes[1]
