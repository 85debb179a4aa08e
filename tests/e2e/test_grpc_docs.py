"""The gRPC examples of docs/grpc.md and of the README's gRPC section run as written against
a real server, and print what they show (each `print(...)  # shown` line prints a line that
starts with what is shown, up to a final `...`)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

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
def test_grpc_example_runs_as_written(server: Server, document: str, code: str) -> None:
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
