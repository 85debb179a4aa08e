"""config.json's schema, version policies and the traffic router."""

from __future__ import annotations

from collections import Counter

import pytest

from app.repository import ConfigError, ModelConfig, Router, ServedVersion, VersionPolicy
from app.repository.config import check_against_policy, parse_config
from tests.unit.fake_runtime import served_version


def _entry(version: int) -> ServedVersion:
    return served_version(version, "m")


@pytest.mark.parametrize(
    ("policy", "candidates", "served"),
    [
        ({"latest": 2}, [3, 10, 1, 7], [7, 10]),
        ({"latest": 5}, [2, 1], [1, 2]),
        ({"all": True}, [3, 1, 2], [1, 2, 3]),
        ({"specific": [1, 3, 9]}, [1, 2, 3], [1, 3]),
    ],
)
def test_the_three_version_policies(
    policy: dict[str, object], candidates: list[int], served: list[int]
) -> None:
    config = ModelConfig.model_validate({"version_policy": policy})
    assert config.policy(VersionPolicy()).select(candidates) == served
    assert config.policy(VersionPolicy()).to_json() == policy


def test_no_policy_means_the_servers_default() -> None:
    default = VersionPolicy(num_versions=2)
    assert ModelConfig().policy(default) is default


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"version_policy": {"latest": 0}}', "version_policy"),
        ('{"version_policy": {"all": false}}', "serves nothing"),
        ('{"version_policy": {"newest": 1}}', "version_policy"),
        ('{"labels": {"Canary!": 2}}', "labels"),
        ('{"labels": {"canary": 0}}', "labels.canary"),
        ('{"traffic": {"canary": 1}}', "traffic: 'canary' is neither a label"),
        ('{"labels": {"a": 1}, "traffic": {"a": 0}}', "add up to 0"),
        ('{"labels": {"a": 1}, "traffic": {"a": -1}}', "traffic.a"),
        ('{"shadow": "beta"}', "shadow: 'beta' is not a label"),
        ('{"shadows": "beta"}', "shadows"),
        ("{not json", "config.json is invalid"),
        ("[1, 2]", "config.json is invalid"),
    ],
)
def test_an_invalid_config_names_the_field(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text.encode())
    message = str(raised.value)
    assert message.startswith("config.json is invalid") and fragment in message, message
    assert "_Latest" not in message and "Value error" not in message


def test_a_config_may_only_name_versions_the_policy_serves() -> None:
    config = parse_config(
        b'{"labels": {"stable": 1, "canary": 2}, "traffic": {"stable": 9, "3": 1}, "shadow": 2}'
    )
    check_against_policy(config, [1, 2, 3])
    with pytest.raises(ConfigError, match=r"traffic\.3: version 3 is not served"):
        check_against_policy(config, [1, 2])


def test_weighted_round_robin_matches_the_weights_in_every_window() -> None:
    stable, canary = _entry(1), _entry(2)
    router = Router(None, [(stable, 90, "stable"), (canary, 10, "canary")], {}, None)
    picks = [router.pick(None) for _ in range(1000)]
    assert Counter(label for _, label in picks) == {"stable": 900, "canary": 100}
    # Smooth: every 10 consecutive requests hold exactly one canary.
    for start in range(0, 1000, 10):
        assert [label for _, label in picks[start : start + 10]].count("canary") == 1


def test_a_rebuilt_router_with_the_same_split_continues_the_round() -> None:
    stable, canary = _entry(1), _entry(2)
    split: list[tuple[ServedVersion, float, str]] = [(stable, 90, "stable"), (canary, 10, "canary")]
    router = Router(None, split, {}, None)
    picks = []
    for _ in range(100):  # a rescan (a new router) after every request
        picks.append(router.pick(None)[1])
        rebuilt = Router(None, list(split), {}, None)
        rebuilt.continue_from(router)
        router = rebuilt
    assert Counter(picks) == {"stable": 90, "canary": 10}
    # Another split starts its own round.
    other = Router(None, [(stable, 50, "stable"), (canary, 50, "canary")], {}, None)
    other.continue_from(router)
    assert [other.pick(None)[1] for _ in range(2)] == ["stable", "canary"]


def test_a_routing_key_always_picks_the_same_version_and_keys_split_by_weight() -> None:
    stable, canary = _entry(1), _entry(2)
    router = Router(None, [(stable, 3, "stable"), (canary, 1, "canary")], {}, None)
    for key in ("alice", "bob", "carol"):
        first = router.pick(key)
        assert all(router.pick(key) == first for _ in range(20))
    shares = Counter(router.pick(f"user-{i}")[1] for i in range(4000))
    assert 900 <= shares["canary"] <= 1100, shares


def test_one_target_is_the_default_without_a_split() -> None:
    only = _entry(3)
    assert Router(only, [], {}, None).pick("any") == (only, "")
    assert Router(None, [(only, 5, "stable")], {}, None).pick(None) == (only, "stable")
    assert Router(None, [], {}, None).pick(None) == (None, "")
