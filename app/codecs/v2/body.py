"""The request body's Content-Encoding: gzip and deflate inflated a megabyte at a time, bounded
in bytes and in JSON values."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

INFLATE_CHUNK_BYTES = 1024 * 1024


def decompress_body(
    body: bytes,
    content_encoding: str | None,
    limit_bytes: int,
    count_values: Callable[[int], None] | None = None,
) -> bytes:
    """The request body without its Content-Encoding (gzip or deflate), at most limit bytes.

    Inflated a megabyte at a time; `count_values`, when given, is called with the number of
    JSON values seen so far (commas + 1) after each, and may raise to stop early: a few KB
    that inflate to millions of values are refused after the first megabytes, not all eight.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding} is not supported; send the body uncompressed, or "
            "gzip/deflate"
        )
    window = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    decompressor = zlib.decompressobj(window)
    chunks: list[bytes] = []
    size = commas = 0
    pending = body
    try:
        while True:
            chunk = decompressor.decompress(pending, INFLATE_CHUNK_BYTES)
            pending = decompressor.unconsumed_tail
            chunks.append(chunk)
            size += len(chunk)
            if size > limit_bytes:
                raise PayloadTooLarge(
                    f"the decompressed body is over the limit of {limit_bytes} bytes; split the "
                    "request"
                )
            if count_values is not None:
                commas += chunk.count(b",")
                count_values(commas + 1)
            if not pending and len(chunk) < INFLATE_CHUNK_BYTES:
                break
    except zlib.error as exc:
        raise BadRequest(
            f"the body is not valid {encoding} data (corrupt or truncated); compress it again"
        ) from exc
    if not decompressor.eof:
        raise BadRequest(f"the {encoding} body is truncated; send the complete compressed data")
    if decompressor.unused_data:
        raise BadRequest(
            f"the body has data after the end of the {encoding} stream (several members, or "
            "trailing bytes); send one compressed stream"
        )
    return b"".join(chunks)
