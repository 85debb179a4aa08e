"""The prediction store end to end, on real server processes: SQLite and a real PostgreSQL
server that this module starts itself (a throwaway cluster in a temp dir).

Durability: after a feedback 200 the server is killed with SIGKILL (no shutdown, no flush);
the restarted server still reports the feedback. With PostgreSQL, two replicas share the
database: feedback sent to the replica that did not make the prediction is accepted at once,
and the database server itself survives a SIGKILL with the feedback in it.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import COMMITTED_VERSION
from tests.e2e.conftest import Server, free_port, start_server

SETOSA = [5.1, 3.5, 1.4, 0.2]


@dataclass
class Postgres:
    data: Path
    port: int
    bin: Path
    user: list[str]  # the command prefix that runs as a non-root user

    @property
    def url(self) -> str:
        return f"postgresql://synergy@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(
            [
                *self.user,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data / "cluster"),
                "-l",
                str(self.data / "postgres.log"),
                "-o",
                f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: no checkpoint, recovery from the WAL at start)."""
        pid = int((self.data / "cluster" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        # Children of a killed postmaster exit once they notice; wait for the port to free.
        time.sleep(1)

    def stop(self) -> None:
        subprocess.run(
            [
                *self.user,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data / "cluster"),
                "-m",
                "immediate",
                "stop",
            ],
            check=False,
            capture_output=True,
        )


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): install "
            "Debian's postgresql package (scripts/ensure-test-tools.sh postgresql does)"
        )
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server of our own on a free port (postgres refuses to run as root: then
    it runs as the `postgres` user)."""
    # Not under pytest's temp root: that is private to the user running the tests, and the
    # cluster belongs to the postgres user when the tests run as root.
    data = Path(tempfile.mkdtemp(prefix="synergy-postgres-"))
    user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        user = ["runuser", "-u", "postgres", "--"]
    server = Postgres(data, free_port(), _postgres_bin(), user)
    subprocess.run(
        [
            *user,
            str(server.bin / "initdb"),
            "-D",
            str(data / "cluster"),
            "-U",
            "synergy",
            "-A",
            "trust",
            "--no-instructions",
        ],
        check=True,
        capture_output=True,
    )
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


def _predict(server: Server, instances: list[Any]) -> str:
    response = httpx.post(
        f"{server.url}/v1/models/iris-knn:predict", json={"instances": instances}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


def _feedback(server: Server, request_id: str, labels: list[Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/iris-knn:feedback",
        json={"request_id": request_id, "labels": labels},
        timeout=60,
    )


def _feedback_rows(server: Server) -> int:
    response = httpx.get(
        f"{server.url}/v1/models/iris-knn/versions/{COMMITTED_VERSION}/monitoring", timeout=60
    )
    assert response.status_code == 200, response.text
    rows: int = response.json()["versions"][0]["rows_with_feedback"]
    return rows


def _sigkill(server: Server) -> None:
    server.process.kill()
    server.process.wait(timeout=30)


def test_sqlite_feedback_survives_sigkill(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {"SYNERGY_STORE_DIR": str(store), "SYNERGY_STORE_FLUSH_INTERVAL_MS": "60000"}
    first = start_server(tmp_path / "first.log", **env)  # type: ignore[arg-type]
    try:
        request_id = _predict(first, [SETOSA, SETOSA, SETOSA])
        response = _feedback(first, request_id, ["setosa", "versicolor", None])
        assert response.status_code == 200, response.text
    finally:
        _sigkill(first)
    assert (store / "monitoring.sqlite3").is_file()
    second = start_server(tmp_path / "second.log", **env)  # type: ignore[arg-type]
    try:
        assert _feedback_rows(second) == 2
        # And the prediction is still there to correct.
        assert _feedback(second, request_id, ["setosa", "setosa", "setosa"]).status_code == 200
        assert _feedback_rows(second) == 3
    finally:
        second.stop()


def test_postgresql_replicas_share_the_store_and_survive_sigkill(
    tmp_path: Path, postgres: Postgres
) -> None:
    env = {"SYNERGY_DATABASE_URL": postgres.url, "SYNERGY_STORE_FLUSH_INTERVAL_MS": "200"}
    replica_a = start_server(tmp_path / "a.log", **env)  # type: ignore[arg-type]
    replica_b = start_server(tmp_path / "b.log", **env)  # type: ignore[arg-type]
    try:
        request_id = _predict(replica_a, [SETOSA, SETOSA])
        # At once, on the other replica: its rows may still be in replica A's queue.
        response = _feedback(replica_b, request_id, ["setosa", "virginica"])
        assert response.status_code == 200, response.text
        assert _feedback_rows(replica_a) == 2
        assert _feedback(replica_b, "never-predicted", ["setosa"]).status_code == 404
    finally:
        _sigkill(replica_a)
        _sigkill(replica_b)
    postgres.kill()
    postgres.start()
    replica_c = start_server(tmp_path / "c.log", **env)  # type: ignore[arg-type]
    try:
        assert _feedback_rows(replica_c) == 2
        log = (tmp_path / "c.log").read_text()
        assert "prediction store on postgresql" in log
    finally:
        replica_c.stop()
