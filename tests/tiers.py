"""Test tiers by folder, and the unit tier's guard.

Each test is marked by the folder it lives in (`tests/<tier>/...`): the folder is the tier, so a
test in the wrong tier shows in review. The unit tier promises no model trained or loaded from
disk and no process started; `UnitGuard` makes that promise checkable: while a unit test's setup,
call or teardown runs, starting a process or opening a model artifact under the committed
`models/` folder raises `UnitTierViolation` and fails the test, even where the code under test
catches the exception (a broad `except` must not hide an offender). A version's `card.json` may
be read: it is the JSON metadata (schema, labels, profile) that unit tests of the card's
consumers use as realistic input, not a model.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CARD_FILENAME = "card.json"  # app.schemas.card.CARD_FILENAME, without importing the app

# The folders under tests/, each its marker (registered with its meaning in pyproject.toml).
TIERS = ("unit", "api", "integration", "e2e")

# Fixtures that train models (conftest.tiny_models_dir, and every fixture built on it).
TRAINING_FIXTURES = frozenset({"tiny_models_dir", "models_copy", "client"})

# Audit events (https://docs.python.org/3/library/audit_events.html) that start a process.
PROCESS_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "os.exec",
        "os.startfile",
        "pty.spawn",
    }
)


def tier_of(path: Path) -> str | None:
    """The tier a test file belongs to: the first folder under tests/, if it names a tier."""
    try:
        parts = path.resolve().relative_to(ROOT / "tests").parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


class UnitTierViolation(RuntimeError):
    """A unit test started a process or opened a committed model artifact."""


class UnitGuard:
    """An audit hook (installed once; audit hooks cannot be removed) that is armed only while a
    unit test runs. Violations are raised where they happen and also recorded, so the test
    fails after its phase even if the code under test swallowed the exception."""

    def __init__(self, models_dir: Path) -> None:
        self._models = tuple(
            {str(models_dir.absolute()) + os.sep, str(models_dir.resolve()) + os.sep}
        )
        self._armed = False
        self.violations: list[str] = []
        self._installed = False

    def install(self) -> None:
        # The platform module asks `uname -p` once per process and caches the answer; libraries
        # (TensorFlow, the card's library versions) ask it on first import. Ask it now, unarmed,
        # so that whichever unit test happens to import them first is not blamed.
        platform.processor()
        if not self._installed:
            sys.addaudithook(self._hook)
            self._installed = True

    @contextmanager
    def armed(self) -> Iterator[None]:
        # multiprocessing's spawn and forkserver start methods call _posixsubprocess.fork_exec
        # directly, past subprocess's audit event; wrap it while armed.
        import _posixsubprocess

        original = _posixsubprocess.fork_exec

        def fork_exec(*args: Any, **kwargs: Any) -> Any:
            self._violate("starts a process (multiprocessing)")
            return original(*args, **kwargs)

        self._armed = True
        _posixsubprocess.fork_exec = fork_exec
        try:
            yield
        finally:
            self._armed = False
            _posixsubprocess.fork_exec = original

    def take(self) -> list[str]:
        """The violations recorded since the last call (and forget them)."""
        taken, self.violations = self.violations, []
        return taken

    def _violate(self, what: str) -> None:
        message = f"a unit test {what}; move it to tests/integration/ (see docs/testing.md)"
        self.violations.append(message)
        raise UnitTierViolation(message)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self._armed:
            return
        if event in PROCESS_EVENTS:
            detail = args[1] if event == "subprocess.Popen" and len(args) > 1 else args
            self._violate(f"starts a process ({event}: {detail!r})")
        elif event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            path = os.path.abspath(os.fsdecode(args[0]))
            if path.startswith(self._models) and os.path.basename(path) != CARD_FILENAME:
                self._violate(f"opens a committed model artifact ({path})")


GUARD = UnitGuard(ROOT / "models")
