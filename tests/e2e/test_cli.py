"""`python -m app` and `python -m app.healthcheck` as commands: help, and settings that cannot
work refused in one line, before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import COMMITTED_MODELS, ROOT
from tests.e2e.conftest import free_port


def _run(module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNERGY_")}
    environment.update(
        {
            "PYTHONPATH": str(ROOT),
            "SYNERGY_MODELS_DIR": str(COMMITTED_MODELS),
            "SYNERGY_PORT": str(free_port()),
            "SYNERGY_GRPC_PORT": str(free_port()),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_app_help_lists_every_setting_and_does_not_serve() -> None:
    from app.settings import flat_fields

    done = _run("app", "--help")
    assert done.returncode == 0, done.stderr
    for name, _ in flat_fields():
        assert f"SYNERGY_{name.upper()}" in done.stdout
    assert "Started server process" not in done.stdout + done.stderr


def test_healthcheck_help_prints_usage() -> None:
    done = _run("app.healthcheck", "--help")
    assert done.returncode == 0
    assert "usage" in done.stdout and "SYNERGY_PORT" in done.stdout
    assert "not ready" not in done.stderr


@pytest.mark.parametrize("value", ["", " ", "[]", ","])
def test_empty_api_keys_refuse_to_start_in_one_line(value: str) -> None:
    done = _run("app", SYNERGY_API_KEYS=value)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SYNERGY_API_KEYS" in lines[0] and "no key" in lines[0], lines
    assert "Traceback" not in done.stderr and "Started server" not in done.stdout


def test_an_empty_key_file_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.sha256"
    key_file.write_text("")
    done = _run("app", SYNERGY_API_KEYS_FILE=str(key_file))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no key digest" in lines[0], lines
    assert "Traceback" not in done.stderr and "Started server" not in done.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SYNERGY_MODEL_BATCHING", "{not json"),
        ("SYNERGY_PORT", "eighty"),
        ("SYNERGY_API_KEYS", "[x"),
    ],
)
def test_a_setting_that_cannot_work_is_one_line_not_a_traceback(name: str, value: str) -> None:
    done = _run("app", **{name: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid setting"), lines
