"""Every command block of the README that calls the service runs as written, from the
repository's root with its samples/, and prints what the README shows: for shell blocks, the
labels in the `# ...` output lines, in order, and no error; for Python blocks, each
`print(...)  # shown` line prints a line that starts with what is shown (up to a final `...`)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# A label as the friendly API ("label":"x"), the V2 JSON ("data":["x"]) and numpy (b'x') show it.
LABEL = re.compile(r"""(?:"label":\s*"|"data":\s*\["|b')([\w-]+)""")
README_ADDRESSES = ("localhost:8000", "127.0.0.1:8000")


def _service_blocks() -> list[tuple[str, str]]:
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    return [
        (kind, code)
        for kind, code in blocks
        if any(a in code for a in README_ADDRESSES)
        and not re.search(r"^(docker|kubectl) ", code, re.M)
        # "Serve your own model" writes into a models folder: tests/e2e/test_own_models_readme.py
        and "synergy import" not in code
    ]


def _expected_labels(code: str) -> list[str]:
    comments = "\n".join(
        line.split("#", 1)[1] for line in code.splitlines() if line.lstrip().startswith("#")
    )
    return LABEL.findall(comments)


def test_the_readme_has_service_examples_for_every_model() -> None:
    code = "\n".join(code for _, code in _service_blocks())
    for model in ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment"):
        assert model in code, model


@pytest.mark.parametrize(
    ("kind", "code"),
    _service_blocks(),
    ids=[f"{kind}-{n}" for n, (kind, _) in enumerate(_service_blocks())],
)
def test_readme_block_runs_as_written(server: Server, kind: str, code: str) -> None:
    address = server.url.removeprefix("http://")
    for readme_address in README_ADDRESSES:
        code = code.replace(readme_address, address)
    command = (
        ["bash", "-c", "set -euo pipefail\n" + code]
        if kind == "bash"
        else [sys.executable, "-c", code]
    )
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    if kind == "python":
        shown = [
            line.split("  # ", 1)[1].strip()
            for line in code.splitlines()
            if line.lstrip().startswith("print(")
        ]
        printed = result.stdout.splitlines()
        assert shown and len(printed) == len(shown), result.stdout
        for got, want in zip(printed, shown, strict=True):
            assert got.startswith(want.removesuffix("...")), (got, want)
        return
    assert '"error"' not in result.stdout, result.stdout
    expected = _expected_labels(code)
    assert expected, "the block shows no output to check"
    assert LABEL.findall(result.stdout) == expected, result.stdout
