"""The no-framework ceiling: a raw ASGI app that does what any server must for a prediction
request, and nothing else.

It reads the body, parses the same JSON with orjson, converts the instances to a float32
array (numeric inputs; a review stays text) and answers a constant prediction with the
headers a JSON answer needs. No routing, no middleware, no model. Run it on uvicorn with
httptools and uvloop (always on uvicorn, so that a faster HTTP server for the service counts
as a gain, not as a moved ceiling):

    python -m uvicorn bench.raw_ceiling:app --http httptools --loop uvloop \
        --no-access-log --log-level warning --port 8001

`bench/ab.py --ceiling` starts it next to the service and puts it in the same rotation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

ANSWER = orjson.dumps(
    {
        "model": "ceiling",
        "version": 1,
        "predictions": [{"label": "7", "probabilities": {str(d): 0.1 for d in range(10)}}],
    }
)
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ANSWER)).encode()),
]
READY = b'{"status":"ready"}'


def read_rows(instances: Any) -> Any:
    """The instances as the float32 array a model would take (texts stay texts)."""
    if instances and isinstance(instances[0], dict):  # named features or {"b64": ...}
        instances = [list(instance.values()) for instance in instances]
    try:
        return np.asarray(instances, dtype=np.float32)
    except (TypeError, ValueError):  # reviews, base64 images
        return instances


async def send_ready(send: Any) -> None:
    """The answer to anything but a POST (readiness checks)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"18")],
        }
    )
    await send({"type": "http.response.body", "body": READY})


async def read_instances(receive: Any) -> Any:
    """The request body's instances as `read_rows` gives them."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return read_rows(orjson.loads(b"".join(chunks))["instances"])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST anything: parse its JSON body, answer the constant; GET: ready."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] != "POST":
        await send_ready(send)
        return
    await read_instances(receive)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
