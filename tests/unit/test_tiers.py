"""The tiers are the folders, and the unit tier's guard fails a test that starts a process or
opens a committed model file (tests/tiers.py)."""

from __future__ import annotations

import contextlib
import multiprocessing
import subprocess
from pathlib import Path

import pytest

from tests.tiers import GUARD, ROOT, TIERS, UnitTierViolation, tier_of

COMMITTED_CARD = next((ROOT / "models").glob("*/*/card.json"))
COMMITTED_ARTIFACT = next(p for p in COMMITTED_CARD.parent.iterdir() if p.name != "card.json")


@pytest.mark.parametrize(
    ("path", "tier"),
    [
        (ROOT / "tests" / "unit" / "test_x.py", "unit"),
        (ROOT / "tests" / "api" / "test_x.py", "api"),
        (ROOT / "tests" / "integration" / "test_x.py", "integration"),
        (ROOT / "tests" / "e2e" / "deeper" / "test_x.py", "e2e"),
        (ROOT / "tests" / "test_x.py", None),
        (ROOT / "tests" / "elsewhere" / "test_x.py", None),
        (ROOT / "app" / "unit" / "test_x.py", None),
    ],
)
def test_the_tier_is_the_first_folder_under_tests(path: Path, tier: str | None) -> None:
    assert tier_of(path) == tier


def test_this_test_is_marked_unit_and_only_unit(request: pytest.FixtureRequest) -> None:
    marks = {mark.name for mark in request.node.iter_markers()} & set(TIERS)
    assert marks == {"unit"}


def test_starting_a_process_is_refused_and_fails_the_test() -> None:
    with pytest.raises(UnitTierViolation, match="starts a process"):
        subprocess.run(["true"], check=False)
    assert len(GUARD.take()) == 1  # recorded: taken here, or this test would fail


def test_a_swallowed_violation_still_fails_the_test() -> None:
    with contextlib.suppress(Exception):  # what careless code under test might do
        subprocess.run(["true"], check=False)
    assert [v for v in GUARD.take() if "starts a process" in v]


def test_a_multiprocessing_child_is_refused() -> None:
    process = multiprocessing.get_context("spawn").Process(target=print)
    with pytest.raises(UnitTierViolation, match="multiprocessing"):
        process.start()
    assert GUARD.take()


def test_opening_a_committed_model_artifact_is_refused() -> None:
    with pytest.raises(UnitTierViolation, match="opens a committed model artifact"):
        COMMITTED_ARTIFACT.read_bytes()
    assert GUARD.take()


def test_a_committed_card_is_metadata_and_may_be_read() -> None:
    assert COMMITTED_CARD.read_text().startswith("{")
    assert GUARD.violations == []


def test_other_files_open_as_usual(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "card.json").write_text("{}")
    assert (tmp_path / "models" / "card.json").read_text() == "{}"
    assert (ROOT / "pyproject.toml").read_text()
    assert GUARD.violations == []
