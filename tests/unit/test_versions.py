"""One version range and one parser of version texts, for folders, configs, cards, paths and
headers; shadow copies counted apart from a version's own statistics."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.batching import Batcher
from app.metrics import ExecutionStats
from app.repository import ConfigError, VersionPolicy
from app.repository.config import check_selection, parse_config
from app.schemas.card import ModelCard
from app.schemas.versions import MAX_VERSION, is_version_folder_name, parse_version
from tests.unit.test_card import VALID


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("1", 1),
        ("42", 42),
        (str(2**31), 2**31),
        (str(MAX_VERSION), MAX_VERSION),
        ("007", 7),
        (str(MAX_VERSION + 1), None),
        ("9" * 19, None),
        ("0", None),
        ("0" * 30, None),
        ("1" * 5000, None),  # int() itself refuses texts over 4300 digits
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("1e3", None),
        ("٣", None),  # a digit, but not ASCII
        ("", None),
    ],
)
def test_one_parser_for_every_version_text(text: str, version: int | None) -> None:
    assert parse_version(text) == version


def test_a_version_folder_name_is_digits_without_a_leading_zero() -> None:
    assert is_version_folder_name("12") and is_version_folder_name(str(MAX_VERSION + 1))
    assert not any(is_version_folder_name(t) for t in ("012", "0", "v1", ".3.tmp", "³"))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (f'{{"labels": {{"big": {MAX_VERSION + 1}}}}}', "labels.big"),
        (f'{{"traffic": {{"{MAX_VERSION + 1}": 1}}}}', "is not a model version"),
        ('{"traffic": {"0": 1}}', "is not a model version"),
        (f'{{"version_policy": {{"specific": [{MAX_VERSION + 1}]}}}}', "version_policy.specific"),
        (f'{{"shadow": {MAX_VERSION + 1}}}', "shadow"),
    ],
)
def test_a_config_outside_the_range_is_invalid_naming_the_field(config: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_config(config.encode())


def test_a_config_inside_the_range_above_int32_is_valid() -> None:
    big = 2**40
    config = parse_config(
        f'{{"labels": {{"big": {big}}}, "traffic": {{"{big}": 1}}, "shadow": {big}}}'.encode()
    )
    assert set(config.referenced_versions().values()) == {big}


@pytest.mark.parametrize(
    ("policy", "candidates"),
    [
        (VersionPolicy("specific", versions=(7,)), [1, 2]),
        (VersionPolicy("specific", versions=(3, 4)), [1, 2, 5]),
    ],
)
def test_a_policy_that_selects_no_folder_is_refused_naming_the_field(
    policy: VersionPolicy, candidates: list[int]
) -> None:
    with pytest.raises(ConfigError, match="version_policy: it serves version"):
        check_selection(policy, candidates)


def test_a_policy_that_selects_a_folder_is_kept() -> None:
    assert check_selection(VersionPolicy("specific", versions=(2, 9)), [1, 2]) == [2]
    assert check_selection(VersionPolicy("latest", num_versions=1), []) == []


def test_a_card_version_has_the_same_range() -> None:
    ModelCard.model_validate({**VALID, "version": MAX_VERSION})
    with pytest.raises(ValidationError, match="version"):
        ModelCard.model_validate({**VALID, "version": MAX_VERSION + 1})


def test_shadow_segments_are_counted_apart_from_the_versions_own() -> None:
    stats = ExecutionStats()
    stats.rows_started([0.01, 0.02], [0.5], shadow_rows=3)  # a mixed batch of 5 rows
    stats.batch_done(5, 0.1)
    stats.rows_started([], [0.2], shadow_rows=4)  # shadow copies only
    stats.batch_done(4, 0.1)
    assert (stats.queued, stats.computed, stats.rows, stats.executions) == (2, 2, 2, 1)
    assert stats.queue_s == pytest.approx(0.03)
    assert stats.compute_s == pytest.approx(0.2)
    assert (stats.shadow_queued, stats.shadow_computed, stats.shadow_rows) == (2, 2, 7)
    assert stats.shadow_queue_s == pytest.approx(0.7)
    ((size, count, seconds),) = stats.batch_sizes()
    assert (size, count) == (5, 1) and seconds == pytest.approx(0.1)


@pytest.mark.anyio
async def test_the_batch_function_knows_which_rows_are_the_versions_own() -> None:
    seen: list[list[bool] | None] = []
    batcher: Batcher | None = None

    def model(rows: list[Any]) -> list[Any]:
        assert batcher is not None
        seen.append(batcher.own_rows)
        return list(rows)

    batcher = Batcher(
        "fake",
        model,
        max_batch_size=64,
        max_batch_wait_ms=1,
        max_queue_rows=1000,
        max_queue_wait_ms=1000,
    )
    batcher.start()
    try:
        await batcher.predict([1], 5.0)
        await batcher.predict([2, 3], 5.0, shadow=True)
    finally:
        await batcher.stop(1.0)
    assert seen == [None, [False, False]]


class _Recorder:
    def __init__(self) -> None:
        self.started: list[tuple[int, int, int]] = []

    def batch_done(self, rows: int, inference_s: float, failed: bool) -> None:
        pass

    def rows_started(
        self, queue_wait_s: Any, shadow_wait_s: Any = (), shadow_rows: int = 0
    ) -> None:
        self.started.append((len(queue_wait_s), len(shadow_wait_s), shadow_rows))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_batcher_tells_its_observer_which_segments_are_shadow_copies() -> None:
    recorder = _Recorder()
    batcher = Batcher(
        "fake",
        lambda rows: list(rows),
        max_batch_size=64,
        max_batch_wait_ms=1,
        max_queue_rows=1000,
        max_queue_wait_ms=1000,
        observer=recorder,
    )
    batcher.start()
    try:
        assert await batcher.predict([1, 2], 5.0) == [1, 2]
        assert await batcher.predict([3, 4, 5], 5.0, shadow=True) == [3, 4, 5]
    finally:
        await batcher.stop(1.0)
    assert recorder.started == [(1, 0, 0), (0, 1, 3)]
