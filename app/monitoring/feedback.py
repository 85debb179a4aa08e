"""Feedback: the true labels (or values) of a stored prediction, checked by the model's task
and stored with their tallies; and the guards every store call shares (a database error is
a 503 that says so, a replaced SQLite file is reopened)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from app.errors import InvalidInput, NotFound, Unavailable
from app.monitoring.database import is_disk_full
from app.monitoring.store import Store
from app.monitoring.writer import Writer
from app.schemas.card import ModelCard
from app.tasks import task_of

log = logging.getLogger(__name__)
T = TypeVar("T")

# Feedback for a request whose rows are still queued on this replica waits for them this long.
# A writer that is stuck (a batch in flight for over writer.STUCK_S) is not waited for at all:
# the caller gets a 503 to retry. Feedback waits on threads of its own, so monitoring
# reports never queue behind it.
FEEDBACK_FLUSH_WAIT_S = 10.0


class Asked(NamedTuple):
    """One feedback request: the model, the prediction's request id, one truth (or None) per
    instance, and the caller whose prediction it must be (None: anyone's, an admin key)."""

    model: str
    request_id: str
    labels: Sequence[str | float | list[float] | None]
    caller: str | None


def store_feedback(
    store: Store,
    writer: Writer | None,
    card_of: Callable[[str, int], ModelCard],
    asked: Asked,
    flush_interval_s: float,
) -> dict[str, Any]:
    """Store the truths `asked` gives for the rows of one stored prediction (blocking), once
    the writer has written that request's rows (or another replica's flush interval passed);
    returns the feedback response. NotFound without such a prediction, InvalidInput for a
    truth the model's task refuses (`card_of(model, version)` gives its card), Unavailable
    while the writer is behind or the database fails."""
    name, request_id, labels, caller = asked
    storing(check_file, store)
    written = True
    if writer is not None:
        written = writer.wait_written(request_id, FEEDBACK_FLUSH_WAIT_S)
    rows = storing(store.prediction, name, request_id, caller)
    if not rows and store.dialect != "sqlite":
        # Another replica may have made the prediction and still hold its rows in its
        # queue: they reach the shared database within one flush interval.
        deadline = time.monotonic() + 2 * flush_interval_s + 1
        while not rows and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = storing(store.prediction, name, request_id, caller)
    if not rows and not written:
        raise Unavailable(
            "the prediction store's writer is behind (its last batch has not committed "
            "yet), so this prediction may not be stored yet; retry shortly",
            retry_after_s=5,
        )
    if not rows:
        raise NotFound(
            f"model {name} has no stored prediction with request id {request_id!r} made "
            "with this API key; send the X-Request-ID of a prediction response of this "
            "model, with the key that made it (predictions are kept for the retention "
            "period, and not at all when the store was full or off)"
        )
    if len(labels) != len(rows):
        raise InvalidInput(
            f"request {request_id} predicted {len(rows)} instance(s) but {len(labels)} "
            f"label(s) were sent; send one label (or null) per instance, in order"
        )
    version = rows[0][1]
    card = card_of(name, version)
    task = task_of(card)
    texts = [
        None if label is None else task.feedback_value(card, label, index, name, version)
        for index, label in enumerate(labels)
    ]
    given = {
        row_id: text for (row_id, _, _), text in zip(rows, texts, strict=True) if text is not None
    }
    storing(store.set_feedback, given)
    return {
        "model": name,
        "version": version,
        "request_id": request_id,
        "rows": len(rows),
        "labelled": len(given),
    }


def check_file(store: Store) -> None:
    """A deleted or replaced SQLite file: say so and use a new one, rather than answer
    from (or write feedback to) a file that is gone."""
    if store.file_replaced():
        log.error(
            "the prediction store's SQLite file was deleted or replaced: the rows it held "
            "are gone; continuing with a new file"
        )
        store.reopen()


def storing(function: Callable[..., T], *args: Any) -> T:
    """Call a store method; a database error (a full disk, a deleted or locked file, a lost
    connection) is a 503 that says so, never a 500 (reserved for a model that raised)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return function(*args)
    except SQLAlchemyError as exc:
        log.error("prediction store: %s", describe(exc))
        full = is_disk_full(exc)
        raise Unavailable(
            "the prediction store cannot "
            + ("write: its disk is full" if full else "be used right now")
            + "; retry later (the server log says why)",
            retry_after_s=30,
        ) from None


def describe(exc: BaseException) -> str:
    # The database URL may hold a password: name the failure, not the connection string.
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
