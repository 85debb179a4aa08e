"""The prediction store: one table of predicted rows (and their feedback), via SQLAlchemy.

SQLite file by default (`SYNERGY_DATA_DIR/monitoring.sqlite3`), PostgreSQL when
`SYNERGY_DATABASE_URL` is set (`postgresql://user:password@host/db`; psycopg 3 is the
driver). The schema is created and upgraded by Alembic at start-up (`app/monitoring/migrations`);
on PostgreSQL an advisory lock keeps replicas that start together from migrating twice.

All methods block (database I/O): call them from a worker thread, never the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Guards concurrent migrations of replicas that share a PostgreSQL database.
MIGRATION_LOCK_ID = 0x53594E4552  # "SYNER"

# The columns a new row is inserted with (the feedback columns start NULL).
INSERT_COLUMNS = (
    "request_id",
    "model",
    "version",
    "route",
    "row_index",
    "created_at",
    "features",
    "stats",
    "probabilities",
    "predicted",
)

metadata = MetaData()
prediction_rows = Table(
    "prediction_rows",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("request_id", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("route", String(64), nullable=False),
    Column("row_index", Integer, nullable=False),
    Column("created_at", Float, nullable=False),  # Unix seconds
    Column("features", LargeBinary, nullable=True),  # compact featurised row (see writer)
    # Arrays as bytes: the monitoring statistics as float64 (in StatisticsComputer.names
    # order: exact, so a value on a profile bin edge stays in its bin) and one float32
    # probability per label (in the card's order).
    Column("stats", LargeBinary, nullable=False),
    Column("probabilities", LargeBinary, nullable=False),
    Column("predicted", String(128), nullable=False),
    Column("true_label", String(128), nullable=True),
    Column("feedback_at", Float, nullable=True),
    # Two indexes only: every index is one more B-tree insert per predicted row, on the
    # writer thread. Feedback finds its rows by request id; reports and retention walk
    # (model, version, id) and the primary key (ids grow with time).
    Index("ix_prediction_rows_request", "request_id", "model"),
    Index("ix_prediction_rows_model_version_id", "model", "version", "id"),
)


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL: the setting (postgresql:// gets the psycopg 3 driver), else the
    SQLite file in `data_dir` (created if missing)."""
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'monitoring.sqlite3').resolve()}"


def make_engine(url: str) -> Engine:
    """An engine with durable commits: SQLite in WAL mode with synchronous=FULL (a commit is
    on disk before it returns), waiting up to 30 s for the other connection's lock."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        config.attributes["connection"] = connection
        # "heads": migrations added side by side (a branch per feature) all apply.
        command.upgrade(config, "heads")


class Store:
    """Queries and writes of the prediction store (blocking; see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writes
    def insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert predicted rows (tuples in INSERT_COLUMNS order) in one transaction.

        Straight to the driver's executemany: SQLAlchemy's per-row parameter processing
        costs tens of microseconds a row, on the thread that shares the GIL with the event
        loop serving requests."""
        if rows:
            marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
            sql = (
                f"INSERT INTO prediction_rows ({', '.join(INSERT_COLUMNS)}) "  # noqa: S608 - constant names; values are parameters
                f"VALUES ({', '.join([marker] * len(INSERT_COLUMNS))})"
            )
            with self.engine.begin() as connection:
                connection.exec_driver_sql(sql, list(rows))

    def prediction(self, model: str, request_id: str) -> list[tuple[int, int, str]]:
        """The rows of the newest prediction of `model` with this request id, in order:
        (row id, version, predicted label); empty when there is none."""
        t = prediction_rows
        with self.engine.connect() as connection:
            newest = connection.execute(
                select(t.c.version, t.c.created_at)
                .where(t.c.request_id == request_id, t.c.model == model)
                .order_by(t.c.id.desc())
                .limit(1)
            ).first()
            if newest is None:
                return []
            rows = connection.execute(
                select(t.c.id, t.c.version, t.c.predicted)
                .where(
                    t.c.request_id == request_id,
                    t.c.model == model,
                    t.c.version == newest.version,
                    t.c.created_at == newest.created_at,
                )
                .order_by(t.c.row_index)
            ).all()
        return [(row.id, row.version, row.predicted) for row in rows]

    def set_feedback(self, labels: dict[int, str]) -> None:
        """Store true labels by row id, in one committed transaction (durable on return)."""
        now = time.time()
        t = prediction_rows
        with self.engine.begin() as connection:
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

    def prune(self, max_age_s: float | None, max_rows: int | None) -> int:
        """Delete rows older than max_age_s, then the oldest beyond max_rows; returns how many."""
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
                deleted += connection.execute(delete(t).where(expired)).rowcount or 0
            if max_rows is not None:
                cutoff = connection.execute(
                    select(t.c.id).order_by(t.c.id.desc()).offset(max_rows).limit(1)
                ).scalar()
                if cutoff is not None:
                    deleted += connection.execute(delete(t).where(t.c.id <= cutoff)).rowcount or 0
        return deleted

    # ------------------------------------------------------------------ reads
    def versions(self, model: str) -> list[int]:
        """Versions of `model` with stored rows."""
        t = prediction_rows
        with self.engine.connect() as connection:
            return sorted(
                connection.execute(select(t.c.version).where(t.c.model == model).distinct())
                .scalars()
                .all()
            )

    def counts(self, model: str, version: int) -> tuple[int, int, int]:
        """(rows predicted, rows with feedback, of those predicted right)."""
        t = prediction_rows
        where = and_(t.c.model == model, t.c.version == version)
        with self.engine.connect() as connection:
            row = connection.execute(
                select(
                    func.count(),
                    func.count(t.c.true_label),
                    func.coalesce(func.sum(case((t.c.true_label == t.c.predicted, 1), else_=0)), 0),
                ).where(where)
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    def recent_feedback(self, model: str, version: int, limit: int) -> list[tuple[str, str]]:
        """(true label, predicted) of the newest `limit` predicted rows that have feedback."""
        t = prediction_rows
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.true_label, t.c.predicted)
                .where(t.c.model == model, t.c.version == version, t.c.true_label.is_not(None))
                .order_by(t.c.id.desc())
                .limit(limit)
            ).all()
        return [(row[0], row[1]) for row in rows]

    def confusion(self, model: str, version: int) -> dict[tuple[str, str], int]:
        """{(true label, predicted): rows} over all feedback."""
        t = prediction_rows
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.true_label, t.c.predicted, func.count())
                .where(t.c.model == model, t.c.version == version, t.c.true_label.is_not(None))
                .group_by(t.c.true_label, t.c.predicted)
            ).all()
        return {(row[0], row[1]): int(row[2]) for row in rows}

    def recent_rows(self, model: str, version: int, limit: int) -> list[tuple[bytes, str]]:
        """(statistics as float64 bytes, predicted label) of the newest `limit` rows."""
        t = prediction_rows
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.stats, t.c.predicted)
                .where(t.c.model == model, t.c.version == version)
                .order_by(t.c.id.desc())
                .limit(limit)
            ).all()
        return [(row[0], row[1]) for row in rows]
