"""The Makefile's everyday targets: listed by `make help`, honouring the documented variables."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import ROOT


def _make(*args: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SYNERGY_", "MAKE"))}
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_make_help_lists_every_phony_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert phony is not None
    targets = phony.group(1).replace("\\\n", " ").split()
    listed = {line.split()[1] for line in _make("help").splitlines() if line.strip()}
    assert set(targets) - listed == set()


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({}, (), "SYNERGY_HOST=127.0.0.1 SYNERGY_PORT=8000"),
        ({"SYNERGY_PORT": "8001"}, (), "SYNERGY_PORT=8001"),
        ({"SYNERGY_HOST": "0.0.0.0"}, (), "SYNERGY_HOST=0.0.0.0"),
        ({}, ("PORT=8002",), "SYNERGY_PORT=8002"),
    ],
)
def test_make_run_serves_where_the_documented_variables_say(
    env: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    commands = _make("-n", "run", *args, **env)
    serve = [line for line in commands.splitlines() if line.rstrip().endswith("-m app")]
    assert len(serve) == 1 and expected in serve[0], commands
