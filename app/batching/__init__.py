"""Adaptive micro-batching: many concurrent requests, one model call per batch.

One `Batcher` per loaded model version. Requests put their rows in a bounded queue and await a
future; one worker thread per model takes rows off the queue, calls the model once per batch,
and hands every request exactly its own results back, in order, on the event loop.

When a batch goes:
- as soon as `max_batch_size` rows are waiting;
- or `max_batch_wait_ms` after the first of the waiting rows was queued;
- or at once, when the worker was idle and a request arrives: batching must not add latency
  to a quiet server. Under load the worker is busy while rows pile up, so batches form by
  themselves without waiting.

Requests larger than `max_batch_size` rows are split across batches and reassembled; small
requests are merged. When more rows wait than fit in a batch, each waiting request gets a fair
share of the batch (water-filling: small requests whole, the rest split evenly among the large
ones) and requests that still have rows go to the back of the line, so a single row is never
stuck behind a 1,000-row request.

A batch function may come in two stages (a `start` attribute: `BatchStart`): start the model
on the rows, then finish. With a backlog (a full batch already queued), the worker starts the
next batch before it finishes the one in flight, so a model that computes on threads of its
own (JAX, XLA) is never idle while the worker does the last batch's Python.

Admission follows what a client would actually wait: the rows ahead of it (with that fair
interleaving) over the model's measured throughput. A request whose expected wait is too long
(see `Batcher.predict`) is refused at once with 503 and a Retry-After from that wait, never
blocks; `max_queue_rows` only caps the memory queued rows take. A model error fails the
requests of that batch only; the worker carries on. The batch function may also return a
ServingError in place of one row's result: then only that row's request fails (and the error
says which row).
"""

from app.batching.batcher import Batcher
from app.batching.requests import BatchFunction, BatchObserver, BatchStart

__all__ = ["BatchFunction", "BatchObserver", "BatchStart", "Batcher"]
