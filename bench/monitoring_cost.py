"""What one `/monitoring` report costs in the store, by the number of stored rows (issue 24).

    python bench/monitoring_cost.py --rows 100000,300000

For each size, fills a fresh SQLite store (one model version, 10 labels, feedback on a
tenth of the rows), then times the report's queries: the counts and confusion matrix as the
release before issue 24 computed them (COUNT and GROUP BY over the version's rows) and as
now (the running tallies), plus the recent windows (the same before and after). Prints ms
per report (median of 5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.monitoring.database import database_url
from app.monitoring.store import Store

LABELS = [str(i) for i in range(10)]


def _fill(store: Store, rows: int) -> None:
    rng = np.random.default_rng(24)
    stats = np.zeros(3).tobytes()
    probabilities = np.zeros(10, dtype=np.float32).tobytes()
    batch = 20_000
    for start in range(0, rows, batch):
        store.insert_rows(
            [
                ("r", "", "m", 1, "v1", 0, 1.0, None, stats, probabilities, LABELS[i % 10])
                for i in range(start, min(rows, start + batch))
            ]
        )
    with store.engine.connect() as connection:
        ids = [r[0] for r in connection.exec_driver_sql("SELECT id FROM prediction_rows")]
    chosen = rng.choice(ids, size=len(ids) // 10, replace=False)
    for start in range(0, len(chosen), 5000):
        store.set_feedback({int(i): LABELS[int(i) % 7] for i in chosen[start : start + 5000]})


def _before(store: Store) -> None:
    """The counting queries of the release before issue 24."""
    with store.engine.connect() as connection:
        connection.exec_driver_sql(
            "SELECT count(*), count(true_label), coalesce(sum(CASE WHEN true_label = predicted "
            "THEN 1 ELSE 0 END), 0) FROM prediction_rows WHERE model = 'm' AND version = 1"
        ).one()
        connection.exec_driver_sql(
            "SELECT true_label, predicted, count(*) FROM prediction_rows WHERE model = 'm' AND "
            "version = 1 AND true_label IS NOT NULL GROUP BY true_label, predicted"
        ).all()


def _now(store: Store) -> None:
    store.counts("m", 1)
    store.confusion("m", 1)


def _windows(store: Store) -> None:
    store.recent_feedback("m", 1, 500)
    store.recent_rows("m", 1, 200)


def _ms(function: object, store: Store) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        function(store)  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,300000")
    args = parser.parse_args()
    print("| stored rows | counts+confusion before ms | now ms | recent windows ms |")
    print("|---:|---:|---:|---:|")
    for rows in (int(n) for n in args.rows.split(",")):
        store = Store(database_url(None, Path(tempfile.mkdtemp(prefix="monitoring-cost-"))))
        store.migrate()
        _fill(store, rows)
        print(
            f"| {rows:,} | {_ms(_before, store):.1f} | {_ms(_now, store):.2f} | "
            f"{_ms(_windows, store):.2f} |",
            flush=True,
        )
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
