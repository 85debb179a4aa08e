"""The prediction store's database: its tables, its URL and engine, and its migrations.

Two tables (the rows, and their running tallies); SQLite in WAL mode by default, PostgreSQL
with `SYNERGY_DATABASE_URL`. The schema is created and upgraded by Alembic at start-up
(`app/monitoring/migrations`); on PostgreSQL an advisory lock keeps replicas that start
together from migrating twice. `app.monitoring.store.Store` reads and writes them.
"""

from __future__ import annotations

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
    create_engine,
    event,
    text,
)

MIGRATIONS = Path(__file__).parent / "migrations"
# Guards concurrent migrations of replicas that share a PostgreSQL database.
MIGRATION_LOCK_ID = 0x53594E4552  # "SYNER"

# The columns a new row is inserted with (the feedback columns start NULL).
INSERT_COLUMNS = (
    "request_id",
    "caller",
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
    # The fingerprint of the API key that predicted ("" without keys; docs/security.md):
    # request ids are per caller, and only that key (or an admin key) gives feedback.
    Column("caller", String(32), nullable=False, server_default=""),
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
    # The recent-accuracy window walks only the rows with feedback (migration 0003).
    Index(
        "ix_prediction_rows_feedback",
        "model",
        "version",
        "id",
        sqlite_where=text("true_label IS NOT NULL"),
        postgresql_where=text("true_label IS NOT NULL"),
    ),
    # Promotion's tallies read the feedback given since a time (migration 0005); partial,
    # so an insert pays nothing for it.
    Index(
        "ix_prediction_rows_feedback_at",
        "model",
        "version",
        "feedback_at",
        sqlite_where=text("feedback_at IS NOT NULL"),
        postgresql_where=text("feedback_at IS NOT NULL"),
    ),
)
# Running tallies (migration 0003): rows per (model, version, caller, predicted, true label),
# "" as the true label of rows without feedback. Kept in the transaction of every insert,
# feedback and delete, so reports read them instead of counting the rows.
prediction_tallies = Table(
    "prediction_tallies",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("caller", String(32), primary_key=True),
    Column("predicted", String(128), primary_key=True),
    Column("true_label", String(128), primary_key=True),
    Column("rows", BigInteger, nullable=False),
)
TALLY_KEY = ("model", "version", "caller", "predicted", "true_label")


def driver_insert(engine: Engine, table: str, columns: tuple[str, ...]) -> str:
    """An INSERT of `columns` into `table` in the driver's own placeholders (SQLite's `?`,
    psycopg's `%s`), for `Connection.exec_driver_sql` with many rows: SQLAlchemy's per-row
    parameter processing costs tens of microseconds a row, on threads that share the GIL
    with the event loop. Names are this package's constants; values are parameters."""
    marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"  # noqa: S608
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
            # Give the write-ahead log's disk space back after each checkpoint beyond 64 MiB.
            cursor.execute("PRAGMA journal_size_limit=67108864")
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
        command.upgrade(config, "head")


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL / the OS's ENOSPC, as the drivers word them."""
    text = str(exc).lower()
    return "disk is full" in text or "no space left" in text or "disk full" in text
