"""The gRPC examples of docs/grpc.md and of the README's gRPC section run as written against
a real server, and print what they show (each `print(...)  # shown` line prints a line that
starts with what is shown, up to a final `...`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import Server, start_server

BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
GRPC_ADDRESS = "localhost:8081"
HTTP_ADDRESS = "localhost:8000"


def _blocks() -> list[tuple[str, str]]:
    blocks = []
    for document in ("docs/grpc.md", "README.md"):
        found = BLOCK.findall((ROOT / document).read_text())
        blocks += [(document, code) for code in found if GRPC_ADDRESS in code]
    return blocks


def test_the_docs_have_grpc_examples_for_every_model() -> None:
    code = "\n".join(code for _, code in _blocks())
    for model in ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment"):
        assert model in code, model
    assert any(document == "README.md" for document, _ in _blocks())


@pytest.mark.parametrize(
    ("document", "code"), _blocks(), ids=[f"{d}-{n}" for n, (d, _) in enumerate(_blocks())]
)
def test_grpc_example_runs_as_written(
    server: Server, tmp_path: Path, document: str, code: str
) -> None:
    control = "unload_model(" in code
    if control:  # model control is off by default and unload refused while polled
        server = start_server(
            tmp_path / "server.log", SYNERGY_CONTROL_API="true", SYNERGY_MODEL_POLL_S="0"
        )
    try:
        _run_as_written(server, code)
    finally:
        if control:
            server.stop()


def _run_as_written(server: Server, code: str) -> None:
    runnable = code.replace(GRPC_ADDRESS, server.grpc_address).replace(
        HTTP_ADDRESS, server.url.removeprefix("http://")
    )
    result = subprocess.run(
        [sys.executable, "-c", runnable], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    shown = [
        line.split("  # ", 1)[1].strip()
        for line in code.splitlines()
        if line.lstrip().startswith("print(")
    ]
    printed = result.stdout.splitlines()
    assert shown and len(printed) == len(shown), result.stdout
    for got, want in zip(printed, shown, strict=True):
        assert got.startswith(want.removesuffix("...")), (got, want)
