"""The prediction store's insert cost with random request ids against time-ordered ones.

    python bench/request_id_index.py [--rows 300000]

Inserts rows shaped like the store's (`app.monitoring.database.prediction_rows`, its two
indexes) into a fresh SQLite file in WAL mode with synchronous=FULL, in batches of 2,000 (the
writer's `SYNERGY_STORE_BATCH_ROWS`), once with 64 random bits per id (the server's ids
before) and once with `app.context.new_request_id` (UUID version 7), alternating, and prints
microseconds per row. Random keys land all over the (request id, model) index; time-ordered
ones at its end.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.context import new_request_id

BATCH = 2000


def _random_id() -> str:
    return f"{random.getrandbits(64):016x}"


def _per_row_us(make_id: Callable[[], str], rows: int, folder: Path) -> float:
    connection = sqlite3.connect(folder / "store.sqlite3")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE prediction_rows (id INTEGER PRIMARY KEY, request_id TEXT, model TEXT, "
        "version INTEGER, created_at REAL, features BLOB, probabilities BLOB, predicted TEXT)"
    )
    connection.execute("CREATE INDEX ix_request ON prediction_rows (request_id, model)")
    connection.execute("CREATE INDEX ix_version ON prediction_rows (model, version, id)")
    spent = 0.0
    for _ in range(rows // BATCH):
        batch = [
            (make_id(), "iris-knn", 2, time.time(), b"\0" * 16, b"\1" * 12, "setosa")
            for _ in range(BATCH)
        ]
        started = time.perf_counter()
        with connection:
            connection.executemany(
                "INSERT INTO prediction_rows (request_id, model, version, created_at, "
                "features, probabilities, predicted) VALUES (?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
        spent += time.perf_counter() - started
    connection.close()
    return spent / (rows // BATCH * BATCH) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("| round | random 64-bit ids, us/row | UUIDv7 ids, us/row |")
    print("|---:|---:|---:|")
    for round_ in range(1, args.rounds + 1):
        figures = []
        for make_id in (_random_id, new_request_id):
            with tempfile.TemporaryDirectory() as name:
                figures.append(_per_row_us(make_id, args.rows, Path(name)))
        print(f"| {round_} | {figures[0]:.2f} | {figures[1]:.2f} |")


if __name__ == "__main__":
    main()
