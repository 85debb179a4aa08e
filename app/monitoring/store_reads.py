"""Reads of the prediction store: versions with rows, counts and confusion from the tallies,
the newest rows and feedback; the base of `app.monitoring.store.Store` (blocking, like it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from app.monitoring.database import prediction_rows, prediction_tallies


class StoreReads:
    """The prediction store's queries (the engine is `Store`'s)."""

    engine: Engine

    def versions(self, model: str) -> list[int]:
        """Versions of `model` with stored rows."""
        t = prediction_rows
        with self.engine.connect() as connection:
            return sorted(
                connection.execute(select(t.c.version).where(t.c.model == model).distinct())
                .scalars()
                .all()
            )

    def counts(self, model: str, version: int, caller: str | None = None) -> tuple[int, int, int]:
        """(rows predicted, rows with feedback, of those predicted right), of one caller's
        rows or (None) everyone's; from the tallies (O(labels^2), not O(rows))."""
        total = feedback = correct = 0
        for (true, predicted), rows in self._tallies(model, version, caller).items():
            total += rows
            if true:
                feedback += rows
                correct += rows if true == predicted else 0
        return total, feedback, correct

    def _tallies(self, model: str, version: int, caller: str | None) -> dict[tuple[str, str], int]:
        """{(true label or "", predicted): rows} of a version (and caller)."""
        t = prediction_tallies
        where = [t.c.model == model, t.c.version == version]
        if caller is not None:
            where.append(t.c.caller == caller)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.true_label, t.c.predicted, func.sum(t.c.rows))
                .where(*where)
                .group_by(t.c.true_label, t.c.predicted)
            ).all()
        return {(row[0], row[1]): int(row[2]) for row in rows if row[2]}

    def recent_feedback(
        self, model: str, version: int, limit: int, caller: str | None = None
    ) -> list[tuple[str, str]]:
        """(true label, predicted) of the newest `limit` predicted rows that have feedback."""
        t = prediction_rows
        return self._newest_with_feedback(
            (t.c.true_label, t.c.predicted), model, version, limit, caller
        )

    def recent_truths(
        self, model: str, version: int, limit: int, caller: str | None = None
    ) -> list[tuple[bytes, str]]:
        """(outputs as float32 bytes, true label) of the newest `limit` rows with feedback
        (a regressor's predicted values and its true values, as JSON)."""
        t = prediction_rows
        return self._newest_with_feedback(
            (t.c.probabilities, t.c.true_label), model, version, limit, caller
        )

    def _newest_with_feedback(
        self, columns: tuple[Any, Any], model: str, version: int, limit: int, caller: str | None
    ) -> list[tuple[Any, Any]]:
        """`columns` of the newest `limit` rows of the version that have feedback."""
        t = prediction_rows
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(*columns)
                .where(
                    t.c.model == model,
                    t.c.version == version,
                    t.c.true_label.is_not(None),
                    *_of(caller),
                )
                .order_by(t.c.id.desc())
                .limit(limit)
            ).all()
        return [(row[0], row[1]) for row in rows]

    def confusion(
        self, model: str, version: int, caller: str | None = None
    ) -> dict[tuple[str, str], int]:
        """{(true label, predicted): rows} over all feedback (from the tallies)."""
        return {key: rows for key, rows in self._tallies(model, version, caller).items() if key[0]}

    def recent_rows(
        self, model: str, version: int, limit: int, caller: str | None = None
    ) -> list[tuple[bytes, str]]:
        """(statistics as float64 bytes, predicted label) of the newest `limit` rows."""
        t = prediction_rows
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.stats, t.c.predicted)
                .where(t.c.model == model, t.c.version == version, *_of(caller))
                .order_by(t.c.id.desc())
                .limit(limit)
            ).all()
        return [(row[0], row[1]) for row in rows]


def _of(caller: str | None) -> list[Any]:
    """The filter for one caller's rows ([] for everyone's)."""
    return [] if caller is None else [prediction_rows.c.caller == caller]
