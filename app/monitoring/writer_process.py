"""The monitoring writer's child process (`python -c ... child_main`), the server's handle
on it (`WriterProcess`), and the pipe both ends speak: length-prefixed pickles of this
package's own messages.

The server (`app.monitoring.writer.Writer`) sends ("open", database URL, limits) once,
("version", model, version, card JSON, folder) for each model version it has not yet
announced, then ("batch", [Group, ...]); the child answers each batch with
("ok", lost, problem, omitted, pruned) or ("error", message). Here the statistics and compact
forms are computed and the rows inserted, on a GIL of their own (see writer.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from app.tasks import task_of

_HEADER = struct.Struct("<Q")
CHILD_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from app.monitoring.writer_process import child_main; child_main()"
)
# The writer process's CPU priority, relative to the server's (see child_main).
WRITER_NICE = 10


class Group(NamedTuple):
    """The rows of one model version in a batch, stacked (what crosses the pipe)."""

    model: str
    version: int
    request_ids: list[str]
    callers: list[str]
    routes: list[str]
    created_at: list[float]
    counts: list[int]  # rows of each request
    rows: Any  # (N, ...) array of the rows, or a list (texts: str; else the rows themselves)
    probabilities: np.ndarray  # (N, C), as computed


def send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)  # not concatenated: a batch is megabytes, one copy is enough
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """The next message; EOFError when the other end closed."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    # Only ever this package's own messages, from the process at the other end of our pipe.
    return pickle.loads(data)  # noqa: S301


class WriterProcess:
    """The writer process, seen from the server (used by the shipper thread only)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin: IO[bytes] = process.stdin
        self.stdout: IO[bytes] = process.stdout
        self._answer: list[Any] = []

    @classmethod
    def start(cls, database_url: str, limits: dict[str, int | None]) -> WriterProcess:
        root = str(Path(__file__).resolve().parents[2])  # the checkout whose `app` this is
        process = subprocess.Popen(  # noqa: S603 - this interpreter, our own code
            [sys.executable, "-c", CHILD_CODE, root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        child = cls(process)
        # The URL (it may hold a password) through the pipe, not the command line.
        send(child.stdin, ("open", database_url, limits))
        return child

    def alive(self) -> bool:
        return self.process.poll() is None

    def ask(self, messages: list[tuple[Any, ...]], timeout_s: float) -> tuple[Any, ...]:
        """Send messages, return the answer to the last (raises on timeout or a dead child).

        The exchange runs on a helper thread (blocked in pipe I/O, the GIL released) so that
        a child that hangs costs at most timeout_s."""
        self._answer = []
        exchange = threading.Thread(target=self._exchange, args=(messages,), daemon=True)
        exchange.start()
        exchange.join(timeout_s)
        if exchange.is_alive():
            raise TimeoutError(f"the writer process did not answer within {timeout_s:.0f} s")
        if not self._answer or isinstance(self._answer[0], BaseException):
            raise RuntimeError(f"the writer process ended (exit code {self.process.poll()})")
        answer: tuple[Any, ...] = self._answer[0]
        return answer

    def _exchange(self, messages: list[tuple[Any, ...]]) -> None:
        try:
            for message in messages:
                send(self.stdin, message)
            self._answer.append(receive(self.stdout))
        except BaseException as exc:  # noqa: BLE001 - handed to ask()
            self._answer.append(exc)

    def close(self, timeout_s: float) -> None:
        """Close the pipe (the child writes nothing more and exits); kill it past timeout_s."""
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def child_main() -> None:
    """The writer process: open the store, then write each batch it is sent and answer
    ("ok", rows) or ("error", message), until its input closes."""
    # Writing predictions is background work: when the CPU is saturated, serving goes first
    # (CFS gives nice +10 about a tenth of a busy core's share, still several times what
    # writing needs at full load); the queue absorbs the wait, and a long saturation fills
    # it: rows are then dropped and counted, never requests delayed.
    with contextlib.suppress(OSError):
        os.nice(WRITER_NICE)
    # The server decides when writing ends (it closes the pipe after its last batch): a
    # Ctrl-C or a SIGTERM sent to the whole process group must not cut the last batch short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Answers go through a private copy of stdout; anything a library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    from app.monitoring.profile import StatisticsComputer
    from app.monitoring.store import Store
    from app.schemas.card import ModelCard

    logging.basicConfig(level=logging.WARNING, format="monitoring-writer: %(message)s")
    from app.monitoring.database import is_disk_full

    store: Store | None = None
    limits: dict[str, int | None] = {}
    computers: dict[tuple[str, int], StatisticsComputer | str] = {}
    while True:
        try:
            message = receive(requests)
        except EOFError:
            break
        kind = message[0]
        if kind == "open":
            store = Store(message[1])
            limits = message[2]
            store.ensure_reserve()
        elif kind == "version":
            _, model, version, card_json, folder = message
            try:
                card = ModelCard.model_validate_json(card_json)
                computers[(model, version)] = StatisticsComputer(card, Path(folder))
            except Exception as exc:  # noqa: BLE001 - reported with each batch of this version
                computers[(model, version)] = f"{model} {version}: {type(exc).__name__}: {exc}"
        elif kind == "batch":
            try:
                assert store is not None
                if store.file_replaced():
                    logging.error(
                        "the store's SQLite file was deleted or replaced: the rows it held are "
                        "gone; writing to a new file"
                    )
                    store.reopen()
                rows, lost, problem, omitted = to_rows(
                    message[1], computers, limits.get("max_row_bytes")
                )
                pruned = 0
                try:
                    store.insert_rows(rows)
                except Exception as exc:
                    if not is_disk_full(exc):
                        raise
                    # Retention on a full disk: the reserve makes room for the delete.
                    pruned += store.make_room()
                    logging.error("disk full: deleted the oldest %d stored rows", pruned)
                    store.insert_rows(rows)
                max_bytes = limits.get("max_bytes")
                if max_bytes:
                    pruned += store.prune_bytes(max_bytes)
                answer: tuple[Any, ...] = ("ok", lost, problem, omitted, pruned)
            except Exception as exc:  # noqa: BLE001 - reported to the server, which counts
                answer = ("error", _describe(exc))
            try:
                send(answers, answer)
            except (BrokenPipeError, ValueError):  # the server is gone: nothing left to do
                break
    if store is not None:
        store.close()


def to_rows(
    groups: list[Group], computers: dict[Any, Any], max_row_bytes: int | None = None
) -> tuple[list[tuple[Any, ...]], int, str | None, int]:
    """Groups -> (store rows (see `Store.insert_rows`), rows that could not be made, why,
    rows stored without their compact input because it was over `max_row_bytes`).

    The statistics and compact forms are computed once per model version over all its rows
    of the batch (vectorised). A version whose statistics fail (its vocabulary unreadable)
    loses its rows, not the other versions'."""
    rows: list[tuple[Any, ...]] = []
    lost = omitted = 0
    problem: str | None = None
    for group in groups:
        computer = computers.get((group.model, group.version))
        try:
            if computer is None or isinstance(computer, str):
                raise RuntimeError(computer or f"{group.model} {group.version}: no card was sent")
            measured, features = computer.measure(group.rows)
        except Exception as exc:  # noqa: BLE001 - this version's rows are lost, counted
            lost += sum(group.counts)
            problem = _describe(exc)
            continue
        stats = np.asarray(measured, dtype=np.float64)
        card = computer.card
        predicted = task_of(card).predicted_labels(card, np.asarray(group.probabilities))
        probabilities = np.asarray(group.probabilities, dtype=np.float32)
        position = 0
        for request_id, caller, route, created_at, count in zip(
            group.request_ids,
            group.callers,
            group.routes,
            group.created_at,
            group.counts,
            strict=True,
        ):
            for index in range(count):
                compact = features[position]
                if max_row_bytes is not None and len(compact) > max_row_bytes:
                    compact = None  # a 50,000-character review: its statistics stay
                    omitted += 1
                rows.append(
                    (
                        request_id,
                        caller,
                        group.model,
                        group.version,
                        route,
                        index,
                        created_at,
                        compact,
                        stats[position].tobytes(),
                        probabilities[position].tobytes(),
                        predicted[position],
                    )
                )
                position += 1
    return rows, lost, problem, omitted


def _describe(exc: BaseException) -> str:
    # No traceback across the pipe; the first line says what failed (a database URL's
    # password is not in SQLAlchemy's messages).
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"
