"""Every code block of README.md and docs/*.md that calls the service runs as written, from the
repository's root (with its samples/), against a real server with the four committed models,
and prints what the page shows.

The convention for writing such blocks (also in docs/writing-docs.md):

* **Which blocks run**: every ```bash and ```python block that names the service's address
  (`localhost:8000` or `127.0.0.1:8000`). The test points the address at its own server.
* **What is compared**: in a bash block, the `#` comment lines directly below a command (no
  blank line between) are that command's output, shown as it prints; a comment after a blank
  line, or at the end of a command's line, is prose. In a python block, each
  `print(...)  # shown` line is compared with the line it prints. Everything shown must match:
  versions, labels, status codes, keys; a number matches when it rounds to the digits shown
  (`0.87` matches 0.8714...; `2` matches only 2); whitespace is free; `...` stands for any
  text (the rest of a list, probabilities not shown). An answer with `"error"` fails the
  block unless the block shows that error.
* **Blocks that do not run**: an HTML comment `<!-- not-run: why -->` on the line right before
  the block (deployment commands, a block that needs hardware or another host). Blocks with
  no address (`make`, `kubectl`, JSON samples, ```text output) are not run either.
* **Blocks that need extra setup**: `<!-- run-env: SYNERGY_X=value ... -->` on the line right
  before the block runs it against a server of its own, started with those settings (space-
  separated `NAME=value`; the same four models).
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.conftest import COMMITTED_MODELS, ROOT
from tests.e2e.conftest import Server, start_server

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ADDRESSES = ("localhost:8000", "127.0.0.1:8000")
FENCE = re.compile(
    r"^(?:<!--\s*(?P<directive>not-run|run-env):(?P<argument>.*?)-->\n)?"
    r"```(?P<kind>[\w-]*)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
RUNNABLE = ("bash", "python")
NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
# A minus sign belongs to the number only where no word or number precedes it ("order-3-1").
SHOWN_TOKEN = re.compile(
    rf"(?P<wild>\.\.\.)|(?P<number>(?<![\w.]){NUMBER}|{NUMBER.removeprefix('-?')})"
    r"|(?P<space>\s+)|(?P<char>.)"
)
MARKER = "<<<readme-test: end of a shown output>>>"


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    kind: str
    code: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}-{self.kind}"


def _blocks() -> tuple[list[Block], list[str]]:
    """(blocks to run, ids of blocks marked not-run)."""
    runs: list[Block] = []
    skipped: list[str] = []
    for path in PAGES:
        text = path.read_text(encoding="utf-8")
        page = path.relative_to(ROOT).as_posix()
        for match in FENCE.finditer(text):
            kind, code = match["kind"], match["code"]
            line = text.count("\n", 0, match.start("kind")) + 1
            if match["directive"] == "not-run":
                assert match["argument"].strip(), f"{page}:{line}: not-run needs a reason"
                skipped.append(f"{page}:{line}")
                continue
            if kind not in RUNNABLE or not any(a in code for a in ADDRESSES):
                continue
            if "synergy import" in code:
                # Writes a model into a models folder: tests/e2e/test_own_models_readme.py runs it.
                continue
            env: dict[str, str] = {}
            if match["directive"] == "run-env":
                env = dict(item.split("=", 1) for item in shlex.split(match["argument"]))
            runs.append(Block(page, line, kind, code, env))
    return runs, skipped


BLOCKS, NOT_RUN = _blocks()


def shown_pattern(shown: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex for what a page shows, and the numbers as shown (one group each)."""
    parts: list[str] = []
    numbers: list[str] = []
    for token in SHOWN_TOKEN.finditer(shown.strip()):
        if token["wild"]:
            parts.append(".*?")
        elif re.fullmatch(r"-?\d+", token["number"] or "x"):
            # An integer (a version, a status, a label, a key) is matched as written.
            parts.append(rf"(?<![\d.]){re.escape(token['number'])}(?![\d.eE])")
        elif token["number"]:
            parts.append(f"({NUMBER})")
            numbers.append(token["number"])
        elif token["space"]:
            parts.append(r"\s*")
        else:
            parts.append(re.escape(token["char"]))
    return re.compile("".join(parts), re.DOTALL), numbers


def _number_matches(got: str, shown: str) -> bool:
    if re.fullmatch(r"-?\d+", shown):
        return got == shown
    decimals = len(shown.split(".", 1)[1].split("e")[0].split("E")[0]) if "." in shown else 0
    exponent = int(re.split("[eE]", shown)[1]) if re.search("[eE]", shown) else 0
    tolerance = 0.5 * 10.0 ** (exponent - decimals) * (1 + 1e-9)
    return math.isclose(float(got), float(shown), abs_tol=tolerance)


def assert_shows(output: str, shown: str, *, where: str, tail: bool = False) -> None:
    """`output` is what `shown` shows (for `tail`: it ends with it; earlier output of
    commands that show nothing may come before)."""
    pattern, numbers = shown_pattern(shown)
    text = output.strip()
    candidates = (
        [m for start in range(len(text)) if (m := pattern.fullmatch(text, start))]
        if tail
        else [m for m in [pattern.fullmatch(text)] if m]
    )
    assert candidates, (
        f"{where}: the output\n  {text[:1500]}\ndoes not match what is shown\n  {shown}"
    )
    mismatched: list[tuple[str, str]] = []
    for match in candidates:
        mismatched = [
            (got, want)
            for got, want in zip(match.groups(), numbers, strict=True)
            if not _number_matches(got, want)
        ]
        if not mismatched:
            return
    raise AssertionError(f"{where}: numbers differ from the page (got, shown): {mismatched}")


def bash_outputs(code: str) -> tuple[str, list[str]]:
    """The script with a marker printed where each shown output is, and the outputs shown."""
    script: list[str] = []
    shown: list[str] = []
    previous = ""
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        is_output = (
            line.lstrip().startswith("#")
            and previous.strip()
            and not previous.lstrip().startswith("#")
        )
        if is_output:
            group: list[str] = []
            while i < len(lines) and lines[i].lstrip().startswith("#"):
                group.append(lines[i].lstrip()[1:].strip())
                i += 1
            shown.append(" ".join(group))
            script.append(f"printf '\\n%s\\n' {shlex.quote(MARKER)}")
            previous = "#"
            continue
        script.append(line)
        previous = line
        i += 1
    return "\n".join(script), shown


@pytest.fixture(scope="module")
def servers(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """The shared server, and one per `run-env` setting asked for (started on first use)."""
    started: dict[str, Server] = {"": server}

    class Servers(dict[str, Server]):
        def __missing__(self, key: str) -> Server:
            env = dict(item.split("=", 1) for item in shlex.split(key))
            log = tmp_path_factory.mktemp("run-env") / "server.log"
            self[key] = start_server(log, COMMITTED_MODELS, **env)
            return self[key]

    pool = Servers(started)
    yield pool
    for key, running in pool.items():
        if key:
            running.stop()


def test_the_readme_calls_every_model() -> None:
    code = "\n".join(b.code for b in BLOCKS if b.page == "README.md")
    for model in ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment"):
        assert model in code, model


def test_every_block_with_the_address_runs_or_says_why_not() -> None:
    """A block naming the address in a language the test cannot run must be marked."""
    for path in PAGES:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match["directive"] or match["kind"] in (*RUNNABLE, "text", "json", ""):
                continue
            assert not any(a in match["code"] for a in ADDRESSES), (
                f"{path.name}: a ```{match['kind']} block calls the service: make it bash or "
                "python, or mark it <!-- not-run: why -->"
            )


def test_the_output_matcher_compares_every_shown_value() -> None:
    """The matcher itself: what a page shows must be what comes back, to the digits shown."""
    answer = '{"model":"iris-knn","version":2,"probabilities":{"a":0.8714,"b":0.1286}}'
    assert_shows(
        answer, '{"model":"iris-knn","version":2,"probabilities":{"a":0.87, ...}}', where="t"
    )
    for wrong in (
        '{"model":"iris-knn","version":1, ...}',  # version
        '{"model":"iris-knn","version":2,"probabilities":{"a":0.93, ...}}',  # probability
        '{"model":"iris-knn","version":2,"probabilities":{"a":0.872, ...}}',  # 3 digits
        '{"model":"binary-mlp", ...}',  # model
    ):
        with pytest.raises(AssertionError):
            assert_shows(answer, wrong, where="t")
    assert_shows("{}{}" + answer, '{"model":"iris-knn", ...}', where="t", tail=True)
    assert_shows("404\n", "404", where="t")
    assert_shows(
        '{"request_id":"order-20261129-1"}', '{"request_id":"order-20261129-1"}', where="t"
    )
    with pytest.raises(AssertionError):
        assert_shows("200\n", "503", where="t")
    assert _number_matches("1.5e-06", "0.00") and not _number_matches("0.006", "0.00")


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_runs_as_written_and_prints_what_it_shows(
    servers: dict[str, Server], block: Block
) -> None:
    running = servers[" ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(block.env.items()))]
    address = running.url.removeprefix("http://")
    code = block.code
    for shown_address in ADDRESSES:
        code = code.replace(shown_address, address)
    if block.kind == "bash":
        script, shown = bash_outputs(code)
        command = ["bash", "-c", "set -euo pipefail\n" + script]
    else:
        shown = [
            line.split("  # ", 1)[1].strip()
            for line in code.splitlines()
            if line.lstrip().startswith("print(") and "  # " in line
        ]
        command = [sys.executable, "-c", code]
    assert shown, f"{block.id}: the block shows no output to compare"
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{block.id}:\n{result.stdout}\n{result.stderr}"
    if block.kind == "bash":
        *outputs, rest = result.stdout.split(MARKER)
        assert len(outputs) == len(shown), result.stdout
        for n, (output, want) in enumerate(zip(outputs, shown, strict=True)):
            assert_shows(output, want, where=f"{block.id} output {n + 1}", tail=True)
        assert not rest.strip(), f"{block.id}: printed more than it shows: {rest[:500]}"
    else:
        printed = result.stdout.splitlines()
        assert len(printed) == len(shown), result.stdout
        for n, (got, want) in enumerate(zip(printed, shown, strict=True)):
            assert_shows(got, want, where=f"{block.id} print {n + 1}")
    shows_error = any('"error"' in s or "error" in s.lower() for s in shown)
    assert shows_error or '"error"' not in result.stdout, result.stdout


def test_blocks_under_test_are_counted() -> None:
    """The figure the docs give: how many blocks run, and how many say why they do not."""
    pages = {b.page for b in BLOCKS}
    assert "README.md" in pages and len(pages) > 3, pages
    print(f"{len(BLOCKS)} blocks run from {len(pages)} pages; {len(NOT_RUN)} marked not-run")
