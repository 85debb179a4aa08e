"""The prediction store: one table of predicted rows (and their feedback), via SQLAlchemy.

SQLite file by default (`SYNERGY_DATA_DIR/monitoring.sqlite3`), PostgreSQL when
`SYNERGY_DATABASE_URL` is set (`postgresql://user:password@host/db`; psycopg 3 is the
driver). The schema is created and upgraded by Alembic at start-up (`app/monitoring/migrations`);
on PostgreSQL an advisory lock keeps replicas that start together from migrating twice.

All methods block (database I/O): call them from a worker thread, never the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    case,
    delete,
    func,
    select,
    update,
)

from app.monitoring.database import (
    INSERT_COLUMNS,
    TALLY_KEY,
    driver_insert,
    make_engine,
    migrate,
    prediction_rows,
    prediction_tallies,
)
from app.monitoring.store_reads import StoreReads

log = logging.getLogger(__name__)

# The tallies' true label of a row with feedback whose truth is a value, not a label.
VALUE_TRUTH = "*"

# Disk space SQLite keeps in reserve (a file next to the database): on a full disk, freeing it
# is what lets retention delete rows at all (a delete needs room in the write-ahead log).
RESERVE_BYTES = 8 * 1024 * 1024
# The byte budget prunes down to this share of itself, so that it does not prune every batch.
PRUNE_TO = 0.9


class Store(StoreReads):
    """Queries and writes of the prediction store (blocking; see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self.path: Path | None = None
        self._inode: tuple[int, int] | None = None
        if self.dialect == "sqlite" and url.startswith("sqlite:///"):
            self.path = Path(url[len("sqlite:///") :])
            self._inode = _inode(self.path)

    @property
    def reserve(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".reserve")

    def ensure_reserve(self) -> None:
        """Keep the reserve file (when there is room for it)."""
        reserve = self.reserve
        if reserve is None or (reserve.exists() and reserve.stat().st_size >= RESERVE_BYTES):
            return
        try:
            with reserve.open("wb") as file:
                file.truncate(0)
                file.write(b"\0" * RESERVE_BYTES)  # written, not sparse: it must hold blocks
                file.flush()
                os.fsync(file.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                reserve.unlink()

    def free_reserve(self) -> None:
        reserve = self.reserve
        if reserve is not None:
            with contextlib.suppress(OSError):
                reserve.unlink()

    def file_replaced(self) -> bool:
        """Whether the SQLite file was deleted or replaced since it was opened (its rows are
        then gone: the store must reopen, not pretend)."""
        if self.path is None:
            return False
        if self._inode is None:  # opened before the file was made: this is the file
            self._inode = _inode(self.path)
            return False
        return _inode(self.path) != self._inode

    def reopen(self) -> None:
        """A new engine on the file at the path (created and migrated when missing)."""
        self.engine.dispose()
        self.engine = make_engine(self.url)
        migrate(self.engine)
        if self.path is not None:
            self._inode = _inode(self.path)

    def migrate(self) -> None:
        migrate(self.engine)
        if self.path is not None:
            self._inode = _inode(self.path)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writes
    def insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert predicted rows (tuples in INSERT_COLUMNS order) in one transaction.

        Straight to the driver's executemany: SQLAlchemy's per-row parameter processing
        costs tens of microseconds a row, on the thread that shares the GIL with the event
        loop serving requests."""
        if rows:
            sql = driver_insert(self.engine, "prediction_rows", INSERT_COLUMNS)
            tallies: Counter[tuple[Any, ...]] = Counter()
            for row in rows:
                # INSERT_COLUMNS: request_id, caller, model, version, ..., predicted (last).
                tallies[(row[2], row[3], row[1], row[-1], "")] += 1
            with self.engine.begin() as connection:
                connection.exec_driver_sql(sql, list(rows))
                self._tally(connection, tallies)

    def prediction(
        self, model: str, request_id: str, caller: str | None
    ) -> list[tuple[int, int, str]]:
        """The rows of the newest prediction of `model` with this request id made by `caller`
        (None: by anyone, for an admin key), in order: (row id, version, predicted label);
        empty when there is none."""
        t = prediction_rows
        where = [t.c.request_id == request_id, t.c.model == model]
        with self.engine.connect() as connection:
            newest = connection.execute(
                select(t.c.version, t.c.created_at, t.c.caller)
                .where(*where, *([t.c.caller == caller] if caller is not None else []))
                .order_by(t.c.id.desc())
                .limit(1)
            ).first()
            if newest is None:
                return []
            rows = connection.execute(
                select(t.c.id, t.c.version, t.c.predicted)
                .where(
                    *where,
                    t.c.caller == newest.caller,
                    t.c.version == newest.version,
                    t.c.created_at == newest.created_at,
                )
                .order_by(t.c.row_index)
            ).all()
        return [(row.id, row.version, row.predicted) for row in rows]

    def set_feedback(self, labels: dict[int, str]) -> None:
        """Store true labels by row id, in one committed transaction (durable on return);
        the tallies move with them."""
        now = time.time()
        t = prediction_rows
        with self.engine.begin() as connection:
            before = {
                row.id: row
                for row in connection.execute(
                    select(
                        t.c.id, t.c.model, t.c.version, t.c.caller, t.c.predicted, t.c.true_label
                    ).where(t.c.id.in_(list(labels)))
                )
            }
            tallies: Counter[tuple[Any, ...]] = Counter()
            for row_id, label in labels.items():
                connection.execute(
                    update(t)
                    .where(t.c.id == row_id)
                    .values(
                        true_label=label,
                        # Repeating the same feedback keeps its time: idempotent.
                        feedback_at=case(
                            (t.c.true_label == label, func.coalesce(t.c.feedback_at, now)),
                            else_=now,
                        ),
                    )
                )
                old = before.get(row_id)
                if old is not None and old.true_label != label:
                    key = (old.model, old.version, old.caller, old.predicted)
                    tallies[(*key, tallied_truth(old.predicted, old.true_label))] -= 1
                    tallies[(*key, tallied_truth(old.predicted, label))] += 1
            self._tally(connection, tallies)

    def _tally(self, connection: Any, changes: Counter[tuple[Any, ...]]) -> None:
        """Add `changes` ({TALLY_KEY values: rows}) to the tallies, in the caller's
        transaction (one upsert per changed key)."""
        changes = Counter({key: n for key, n in changes.items() if n})
        if not changes:
            return
        sql = (
            driver_insert(self.engine, "prediction_tallies", (*TALLY_KEY, "rows"))
            + f" ON CONFLICT ({', '.join(TALLY_KEY)}) DO UPDATE SET "
            "rows = prediction_tallies.rows + excluded.rows"
        )
        connection.exec_driver_sql(sql, [(*key, n) for key, n in changes.items()])

    def _delete_rows(self, connection: Any, where: Any) -> int:
        """Delete the rows `where` selects, taking them off the tallies (O(rows deleted))."""
        t = prediction_rows
        label = case(
            (t.c.true_label.is_(None), ""),
            (t.c.predicted == "", VALUE_TRUTH),  # as `tallied_truth`, in SQL
            else_=t.c.true_label,
        )
        gone = connection.execute(
            select(t.c.model, t.c.version, t.c.caller, t.c.predicted, label, func.count())
            .where(where)
            .group_by(t.c.model, t.c.version, t.c.caller, t.c.predicted, label)
        ).all()
        if not gone:
            return 0
        deleted = connection.execute(delete(t).where(where)).rowcount or 0
        self._tally(connection, Counter({tuple(row[:5]): -int(row[5]) for row in gone}))
        connection.execute(delete(prediction_tallies).where(prediction_tallies.c.rows <= 0))
        return int(deleted)

    def prune(self, max_age_s: float | None, max_rows: int | None) -> int:
        """Delete rows older than max_age_s, then the oldest beyond max_rows; returns how many.
        O(rows deleted): ids grow by one per row and only the oldest are ever deleted."""
        t = prediction_rows
        deleted = 0
        with self.engine.begin() as connection:
            if max_age_s is not None:
                # Ids grow with time: the first row young enough, walking the primary key
                # from the oldest, bounds what to delete (no index on created_at to keep up).
                first_kept = connection.execute(
                    select(t.c.id)
                    .where(t.c.created_at >= time.time() - max_age_s)
                    .order_by(t.c.id)
                    .limit(1)
                ).scalar()
                expired = t.c.id < first_kept if first_kept is not None else t.c.id.is_not(None)
                deleted += self._delete_rows(connection, expired)
            if max_rows is not None:
                low, high = connection.execute(select(func.min(t.c.id), func.max(t.c.id))).one()
                if low is not None and high - low + 1 > max_rows:
                    deleted += self._delete_rows(connection, t.c.id <= high - max_rows)
        return deleted

    def used_bytes(self) -> int:
        """Bytes the stored rows take: SQLite's pages in use (the file less its free pages);
        PostgreSQL's estimate (rows per the planner's statistics x the newest rows' mean
        size), since its table files shrink only on VACUUM FULL."""
        with self.engine.connect() as connection:
            if self.dialect == "sqlite":
                pages = connection.exec_driver_sql("PRAGMA page_count").scalar() or 0
                free = connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0
                size = connection.exec_driver_sql("PRAGMA page_size").scalar() or 0
                return int((pages - free) * size)
            rows = connection.exec_driver_sql(
                "SELECT GREATEST(reltuples, 0) FROM pg_class WHERE relname = 'prediction_rows'"
            ).scalar()
            mean = connection.exec_driver_sql(
                "SELECT avg(pg_column_size(p.*)) FROM (SELECT * FROM prediction_rows "
                "ORDER BY id DESC LIMIT 1000) p"
            ).scalar()
            return int(float(rows or 0) * float(mean or 0))

    def prune_bytes(self, max_bytes: int) -> int:
        """Delete the oldest rows until the rows take at most `PRUNE_TO` of `max_bytes`, when
        they take more than `max_bytes`; returns how many. O(rows deleted): the row count is
        read off the primary key (ids grow by one per row; only the oldest are deleted)."""
        used = self.used_bytes()
        if used <= max_bytes:
            return 0
        t = prediction_rows
        with self.engine.begin() as connection:
            low, high = connection.execute(select(func.min(t.c.id), func.max(t.c.id))).one()
            if low is None:
                return 0
            rows = high - low + 1
            excess = used - PRUNE_TO * max_bytes
            count = min(rows, max(1, int(excess * rows / used) + 1))
            return self._delete_rows(connection, t.c.id < low + count)

    def make_room(self, share: float = 0.1) -> int:
        """The disk is full: free the reserve, then delete the oldest `share` of the rows and
        give the log's space back (checkpoint), so writing can go on; returns rows deleted."""
        self.free_reserve()
        t = prediction_rows
        with self.engine.begin() as connection:
            low, high = connection.execute(select(func.min(t.c.id), func.max(t.c.id))).one()
            if low is None:
                return 0
            count = max(1, int((high - low + 1) * share))
            deleted = self._delete_rows(connection, t.c.id < low + count)
        if self.dialect == "sqlite":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.ensure_reserve()
        return deleted


def tallied_truth(predicted: str, true_label: str | None) -> str:
    """The true-label key a row is tallied under: "" without feedback; for a row with no
    predicted label (a regressor's: its truth is a value, as JSON) `VALUE_TRUTH`, so each
    distinct true value does not add a tally row; else the true label."""
    if true_label is None:
        return ""
    return VALUE_TRUTH if predicted == "" else true_label


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
