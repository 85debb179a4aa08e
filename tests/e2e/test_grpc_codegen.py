"""The committed gRPC code (app/rpc/generated) is what the locked grpcio-tools generates.

In the e2e tier because it starts a process: protoc runs in one of its own (see
scripts/generate_protos.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

GENERATOR = ROOT / "scripts" / "generate_protos.py"


def test_the_committed_generated_code_matches_the_locked_grpcio_tools() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
