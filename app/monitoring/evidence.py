"""The promotion tables of the prediction store and the bounded queries behind a comparison.

- `shadow_pairs`: one row per row a shadow answered, next to the primary's label (written
  from the shadow's task, in batches, never on the primary's request path). Feedback is
  stored on the primary's rows only (`prediction_rows`), so it counts for the primary's own
  monitoring as before; a paired comparison joins the two by (request id, row).
- `promotion_decisions`: every decision with its verdict and evidence (append-only; the
  newest per candidate is in force, see `app.repository.promotion`).

Cost: the comparisons are running tallies (`app.monitoring.tallies`); each poll reads only
the rows stored after a watermark (by id, through the (model, version, id) indexes) and the
feedback given after a time watermark (through the feedback-time indexes of migrations 0005
and 0006),
so what a poll costs follows what is new, not the history.

All methods block (database I/O): call them from a worker thread.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

from app.monitoring.database import driver_insert, prediction_rows
from app.monitoring.store import Store
from app.repository.promotion import Decision

# Serialises decisions across replicas that share a PostgreSQL database (per model).
DECISION_LOCK_ID = 0x50524F4D  # "PROM"

metadata = MetaData()
shadow_pairs = Table(
    "shadow_pairs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("row_index", Integer, nullable=False),
    Column("primary_version", Integer, nullable=False),
    Column("shadow_version", Integer, nullable=False),
    Column("primary_predicted", String(128), nullable=False),
    Column("shadow_predicted", String(128), nullable=True),
    Column("created_at", Float, nullable=False),
)
promotion_decisions = Table(
    "promotion_decisions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("candidate", Integer, nullable=False),
    Column("baseline", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("decided_by", String(16), nullable=False),
    Column("verdict", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("replica", String(128), nullable=False),
)

ShadowRow = tuple[str, str, int, int, int, str, str | None, float]
SHADOW_COLUMNS = (
    "model",
    "request_id",
    "row_index",
    "primary_version",
    "shadow_version",
    "primary_predicted",
    "shadow_predicted",
    "created_at",
)


class Evidence:
    """Queries and writes of the promotion tables, on the prediction store's engine."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    # ------------------------------------------------------------------ shadow pairs
    def insert_shadow_rows(self, rows: Sequence[ShadowRow]) -> None:
        """Insert (model, request id, row index, primary version, shadow version, primary's
        label, shadow's label or None, created_at) rows in one transaction, straight to the
        driver's executemany (as `Store.insert_rows`: SQLAlchemy's per-row parameter
        processing ran on a thread sharing the GIL with the event loop)."""
        if not rows:
            return
        sql = driver_insert(self.engine, "shadow_pairs", SHADOW_COLUMNS)
        with self.engine.begin() as connection:
            connection.exec_driver_sql(sql, list(rows))

    def shadow_pairs_after(
        self, model: str, candidate: int, baseline: int, after_id: int, limit: int
    ) -> list[tuple[int, float, str, str | None, None, None]]:
        """The oldest `limit` pairs of the shadow `candidate` next to `baseline` with id >
        `after_id`: (id, stored at, baseline's answer, candidate's or None, None, None), by id.

        The truths come from `shadow_feedback_after` only, also for a pair stored after its
        feedback (the tallies read feedback again over an overlap longer than a poll): looking
        each pair's truth up here cost a scan of the version's rows per pair on SQLite, whose
        planner walks (model, version, id) backwards for an `ORDER BY id DESC LIMIT 1`."""
        s = shadow_pairs
        query = (
            select(s.c.id, s.c.created_at, s.c.primary_predicted, s.c.shadow_predicted)
            .where(
                s.c.model == model,
                s.c.shadow_version == candidate,
                s.c.primary_version == baseline,
                s.c.id > after_id,
            )
            .order_by(s.c.id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [(*row, None, None) for row in connection.execute(query)]

    def shadow_feedback_after(
        self, model: str, candidate: int, baseline: int, after: float
    ) -> list[tuple[int, float, str, str | None, str | None, float | None]]:
        """The pairs whose baseline row got feedback at a time > `after` (as
        `shadow_pairs_after`, with the truth and its time), through the feedback-time index."""
        query = shadow_feedback_query(model, candidate, baseline, after)
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]

    # ------------------------------------------------------------------ canary
    def rows_after(
        self, model: str, version: int, after_id: int, limit: int
    ) -> list[tuple[int, float, None, None, None, None]]:
        """The oldest `limit` rows of a version with id > `after_id`: (id, created at, None,
        None, None, None), by id; their outputs and truths come from `feedback_after` (as a
        shadow's, see `shadow_pairs_after`), so counting a row reads no blob."""
        p = prediction_rows
        query = (
            select(p.c.id, p.c.created_at)
            .where(p.c.model == model, p.c.version == version, p.c.id > after_id)
            .order_by(p.c.id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [(*row, None, None, None, None) for row in connection.execute(query)]

    def feedback_after(
        self, model: str, version: int, since_id: int, after: float
    ) -> list[tuple[int, float, str, bytes, str | None, float | None]]:
        """The rows of a version with id >= `since_id` that got feedback at a time > `after`:
        (id, created at, predicted label, outputs as float32 bytes, truth, feedback time),
        through the feedback-time index."""
        p = prediction_rows
        query = select(
            p.c.id,
            p.c.created_at,
            p.c.predicted,
            p.c.probabilities,
            p.c.true_label,
            p.c.feedback_at,
        ).where(
            p.c.model == model,
            p.c.version == version,
            p.c.feedback_at > after,
            p.c.true_label.is_not(None),
            p.c.id >= since_id,
        )
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]

    def first_row_id(self, model: str, version: int) -> int | None:
        """The id of the oldest stored row of a version (where its comparison starts)."""
        p = prediction_rows
        with self.engine.connect() as connection:
            value = connection.execute(
                select(func.min(p.c.id)).where(p.c.model == model, p.c.version == version)
            ).scalar()
        return None if value is None else int(value)

    # ------------------------------------------------------------------ decisions
    def decisions(self, after_id: int = 0, model: str | None = None) -> list[Decision]:
        """Decisions with id > after_id (of one model, or all), oldest first."""
        d = promotion_decisions
        query = select(d).where(d.c.id > after_id).order_by(d.c.id)
        if model is not None:
            query = query.where(d.c.model == model)
        with self.engine.connect() as connection:
            return [_decision(row) for row in connection.execute(query).mappings()]

    def decide(
        self,
        model: str,
        candidate: int,
        baseline: int,
        action: str,
        decided_by: str,
        verdict: str,
        evidence: dict[str, Any],
        replica: str,
        *,
        only_if_undecided: bool,
    ) -> Decision | None:
        """Record a decision; with `only_if_undecided` (the rules), only when no decision is
        in force for this candidate: the replicas sharing a PostgreSQL database take a
        per-model advisory lock, so one decides and the others find its decision. None when
        a decision was in force already."""
        d = promotion_decisions
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                key = zlib.crc32(model.encode()) & 0x7FFFFFFF
                connection.exec_driver_sql(
                    f"SELECT pg_advisory_xact_lock({DECISION_LOCK_ID}, {key})"
                )
            if only_if_undecided:
                newest = connection.execute(
                    select(d.c.action)
                    .where(d.c.model == model, d.c.candidate == candidate)
                    .order_by(d.c.id.desc())
                    .limit(1)
                ).scalar()
                if newest is not None and newest != "reset":
                    return None
            values = {
                "model": model,
                "candidate": candidate,
                "baseline": baseline,
                "action": action,
                "decided_by": decided_by,
                "verdict": verdict,
                "evidence": json.dumps(evidence, sort_keys=True),
                "created_at": time.time(),
                "replica": replica[:128],
            }
            new_id = connection.execute(insert(d).values(**values).returning(d.c.id)).scalar_one()
        return _decision({**values, "id": new_id})


def shadow_feedback_query(model: str, candidate: int, baseline: int, after: float) -> Any:
    """The select of `Evidence.shadow_feedback_after`: from each feedback row given after
    `after` to its pair by the pair's full key (migration 0006's index)."""
    s, p = shadow_pairs, prediction_rows
    return (
        select(
            s.c.id,
            s.c.created_at,
            s.c.primary_predicted,
            s.c.shadow_predicted,
            p.c.true_label,
            p.c.feedback_at,
        )
        .select_from(
            p.join(
                s,
                (s.c.request_id == p.c.request_id)
                & (s.c.row_index == p.c.row_index)
                & (s.c.model == model)
                & (s.c.shadow_version == candidate)
                & (s.c.primary_version == baseline),
            )
        )
        .where(
            p.c.model == model,
            p.c.version == baseline,
            p.c.feedback_at > after,
            p.c.true_label.is_not(None),
        )
    )


def _decision(row: Any) -> Decision:
    return Decision(
        id=int(row["id"]),
        model=row["model"],
        candidate=int(row["candidate"]),
        baseline=int(row["baseline"]),
        action=row["action"],
        decided_by=row["decided_by"],
        verdict=row["verdict"],
        created_at=float(row["created_at"]),
        replica=row["replica"],
        evidence=json.loads(row["evidence"]),
    )
