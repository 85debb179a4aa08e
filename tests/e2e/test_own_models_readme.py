"""The README's "Serve your own model" block runs as written: in a scratch folder (its
`models/` is the one a real server watches, `.venv` the repository's), against that server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.slow


def _block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Serve your own model", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert found is not None, "the section has no bash block"
    return found.group(1)


def test_the_serve_your_own_model_block_runs_as_written(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    server = start_server(tmp_path / "server.log", models, wait_path="/health/live")
    try:
        code = _block().replace("localhost:8000", server.url.removeprefix("http://"))
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported wine version 1" in done.stdout
    assert '"label":"0"' in done.stdout, done.stdout[-2000:]
