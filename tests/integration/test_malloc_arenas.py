"""The server caps glibc's malloc arenas unless the operator chose a number."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _capped(env: dict[str, str]) -> str:
    code = "from app.budget import limit_malloc_arenas; print(limit_malloc_arenas())"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.mark.skipif(
    not (ctypes.util.find_library("c") or "").startswith("libc.so"), reason="glibc only"
)
def test_arenas_are_capped_unless_the_operator_set_them() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _capped(environment) == "True"
    assert _capped({**environment, "MALLOC_ARENA_MAX": "8"}) == "False"
