"""Decisions laid over config.json: what promote, rollback and reset change in routing, and
which versions a comparison compares by default."""

from __future__ import annotations

from app.repository.config import ModelConfig
from app.repository.promotion import Decision, Pair, default_pair, in_force, overlay

CANARY = ModelConfig.model_validate(
    {"labels": {"stable": 2, "canary": 3}, "traffic": {"stable": 90, "canary": 10}}
)
SHADOW = ModelConfig.model_validate(
    {"labels": {"stable": 2, "canary": 3}, "traffic": {"stable": 1}, "shadow": "canary"}
)
NUMBERS = ModelConfig.model_validate({"traffic": {"2": 90, "3": 10}})


def _decision(action: str, id_: int = 1, candidate: int = 3, baseline: int = 2) -> Decision:
    return Decision(id_, "m", candidate, baseline, action, "rule", "", 0.0)


def test_default_pairs() -> None:
    assert default_pair(CANARY, [2, 3]) == Pair(3, 2, "canary")
    assert default_pair(SHADOW, [2, 3]) == Pair(3, 2, "shadow")
    assert default_pair(NUMBERS, [2, 3]) == Pair(3, 2, "canary")
    assert default_pair(CANARY, [2]) is None  # the canary is not ready: nothing to compare
    assert default_pair(ModelConfig(), [1, 2]) is None


def test_promote_moves_the_stable_label_and_stops_the_shadow() -> None:
    canary = overlay(CANARY, [_decision("promote")])
    assert canary is not None and canary.labels == {"stable": 3, "canary": 3}
    assert canary.traffic == CANARY.traffic  # both labels now name version 3
    shadow = overlay(SHADOW, [_decision("promote")])
    assert shadow is not None and shadow.labels["stable"] == 3 and shadow.shadow is None
    numbers = overlay(NUMBERS, [_decision("promote")])
    assert numbers is not None and numbers.traffic == {"3": 100.0}


def test_rollback_takes_the_traffic_away_and_keeps_the_labels() -> None:
    canary = overlay(CANARY, [_decision("rollback")])
    assert canary is not None and canary.traffic == {"stable": 90, "canary": 0.0}
    assert canary.labels == CANARY.labels
    shadow = overlay(SHADOW, [_decision("rollback")])
    assert shadow is not None and shadow.shadow is None and shadow.traffic == {"stable": 1}
    only = ModelConfig.model_validate({"traffic": {"3": 1}, "labels": {"canary": 3}})
    fallback = overlay(only, [_decision("rollback")])
    assert fallback is not None and fallback.traffic == {"3": 0.0, "2": 1.0}


def test_the_newest_decision_per_candidate_is_in_force_and_reset_undoes() -> None:
    decisions = [_decision("rollback", 1), _decision("promote", 2)]
    assert in_force(decisions)[3].action == "promote"
    assert overlay(CANARY, [*decisions, _decision("reset", 3)]) is None
    assert in_force([*decisions, _decision("reset", 3)]) == {}


def test_a_decision_about_a_version_config_json_no_longer_names_is_ignored() -> None:
    moved_on = ModelConfig.model_validate(
        {"labels": {"stable": 2, "canary": 4}, "traffic": {"stable": 90, "canary": 10}}
    )
    assert overlay(moved_on, [_decision("rollback")]) is None
