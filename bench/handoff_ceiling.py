"""The no-framework ceiling plus the one thing a batching server cannot skip: handing each
request's rows to a worker thread and waiting for them to come back.

The same raw ASGI app as `bench/raw_ceiling.py` (read the body, orjson, a float32 array, a
constant answer), except that each request's rows go through this project's own
`app.batching.Batcher` (the bounded queue, one hop to the worker thread per loop iteration,
one hop back per batch) with a batch function that answers a constant row per input row: no
model, no featurisation, no routing, no middleware, no bookkeeping.

Its requests/s over the ceiling's bound what any server that batches on a worker thread (as
this one must, so that the event loop never blocks on a model) can reach against the
ceiling on this machine, before it does any work of its own:

    python bench/ab.py --ceiling --handoff --models iris-knn,binary-mlp
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.batching import Batcher
from bench.raw_ceiling import ANSWER, HEADERS, read_instances, send_ready

_ROW = np.full(10, 0.1)


def _constant_rows(rows: list[Any]) -> list[np.ndarray]:
    return [_ROW] * len(rows)


class HandoffApp:
    """ASGI app: the ceiling's work plus `Batcher.predict` of the request's rows."""

    def __init__(self) -> None:
        self.batcher: Batcher | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                self.batcher = Batcher("handoff", _constant_rows)
                self.batcher.start()
                await send({"type": "lifespan.startup.complete"})
            if self.batcher is not None:
                await self.batcher.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] != "POST":
            await send_ready(send)
            return
        rows = await read_instances(receive)
        assert self.batcher is not None
        await self.batcher.predict(list(rows))
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": ANSWER})


app = HandoffApp()
