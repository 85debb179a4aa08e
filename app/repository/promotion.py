"""Promotion decisions laid over a model's config.json, and which versions a comparison
compares by default.

config.json is the operator's intent and is never written (the model folder may be a
read-only volume). A decision (`Decision`, stored in the prediction store's
`promotion_decisions` table) names a candidate version, the baseline it was compared with
and an action; the newest decision per candidate is in force, and `overlay` computes the
config that requests are routed by:

- promote C over B: the `stable` label (when config.json has one) names C; traffic keys
  that name B by number name C; a shadow naming C stops (C now serves). Without a `stable`
  label and without traffic, C takes all traffic.
- rollback C: every traffic weight that reaches C becomes 0 (when nothing is left, B takes
  all traffic); a shadow naming C stops. Labels still name C, so requests that ask for it
  by label or version still reach it.
- reset C: no decision for C (the action that undoes one); automatic decisions resume.

A decision applies only while config.json still names its candidate and baseline among
the versions it serves; an operator who edits config.json to another candidate starts a new
comparison.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.errors import NotFound
from app.repository.config import ModelConfig

ACTIONS = ("promote", "rollback", "reset")
STABLE_LABEL = "stable"


@dataclass(frozen=True)
class Decision:
    """One recorded decision (a row of `promotion_decisions`)."""

    id: int
    model: str
    candidate: int
    baseline: int
    action: str  # promote | rollback | reset
    decided_by: str  # "rule" or "manual"
    verdict: str
    created_at: float
    replica: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The decision as the API shows it."""
        return {
            "id": self.id,
            "model": self.model,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "action": self.action,
            "decided_by": self.decided_by,
            "verdict": self.verdict,
            "created_at": self.created_at,
            "replica": self.replica,
            "evidence": self.evidence,
        }


def in_force(decisions: Iterable[Decision]) -> dict[int, Decision]:
    """The decision in force per candidate version: its newest, unless that is a reset."""
    newest: dict[int, Decision] = {}
    for decision in sorted(decisions, key=lambda d: d.id):
        newest[decision.candidate] = decision
    return {c: d for c, d in newest.items() if d.action != "reset"}


def overlay(config: ModelConfig, decisions: Iterable[Decision]) -> ModelConfig | None:
    """The config requests follow with `decisions` in force (None: config.json's own)."""
    named = set(config.referenced_versions().values())
    labels = dict(config.labels)
    traffic = dict(config.traffic)
    shadow = config.shadow
    changed = False
    for decision in sorted(in_force(decisions).values(), key=lambda d: d.id):
        candidate, baseline = decision.candidate, decision.baseline
        if candidate not in named and candidate not in labels.values():
            continue  # config.json moved on to another candidate: a new comparison
        current = ModelConfig.model_construct(labels=labels, traffic=traffic, shadow=shadow)
        if decision.action == "promote":
            if STABLE_LABEL in labels:
                labels[STABLE_LABEL] = candidate
            moved = {(str(candidate) if key == str(baseline) else key): 0.0 for key in traffic}
            for key, weight in traffic.items():
                moved[str(candidate) if key == str(baseline) else key] += weight
            traffic = moved
            if STABLE_LABEL not in labels and not traffic:
                traffic = {str(candidate): 1.0}
        else:
            traffic = {
                key: (0.0 if current.version_of(key) == candidate else weight)
                for key, weight in traffic.items()
            }
            if sum(traffic.values()) <= 0:
                traffic = {**traffic, str(baseline): 1.0}
        if shadow is not None and current.version_of(shadow) == candidate:
            shadow = None
        changed = True
    if not changed:
        return None
    return config.model_copy(update={"labels": labels, "traffic": traffic, "shadow": shadow})


@dataclass(frozen=True)
class Pair:
    """What a comparison compares: the candidate, the baseline and how ("shadow": the same
    requests; "canary": their own requests)."""

    candidate: int
    baseline: int
    kind: str


def resolve(text: str, config: ModelConfig, versions: Iterable[int]) -> int:
    """A version number or label -> the version (NotFound naming the choices)."""
    served = sorted(versions)
    if text.isascii() and text.isdigit() and len(text) <= 10:
        version = int(text)
        if version in served:
            return version
        raise NotFound(
            f"no version {version} is served; served versions: "
            + (", ".join(str(v) for v in served) or "none")
        )
    if text in config.labels:
        return config.labels[text]
    raise NotFound(
        f"{text!r} is neither a served version nor a label; labels: "
        + (", ".join(sorted(config.labels)) or "none")
    )


def routed_version(config: ModelConfig, ready: Iterable[int]) -> int | None:
    """The version that unversioned traffic goes to (with a split: the heaviest target)."""
    ready = set(ready)
    # The heaviest target; on a tie the `stable` label's, then the older version.
    targets = [
        (weight, key == STABLE_LABEL, -config.version_of(key))
        for key, weight in config.traffic.items()
        if weight > 0 and config.version_of(key) in ready
    ]
    if targets:
        return -max(targets)[2]
    return max(ready) if ready else None


def default_pair(config: ModelConfig, ready: Iterable[int]) -> Pair | None:
    """The shadow (else the lightest other traffic target) against the routed version."""
    ready = set(ready)
    baseline = routed_version(config, ready)
    if baseline is None:
        return None
    if config.shadow is not None:
        shadow = config.version_of(config.shadow)
        if shadow != baseline and shadow in ready:
            return Pair(shadow, baseline, "shadow")
    others = sorted(
        (weight, config.version_of(key))
        for key, weight in config.traffic.items()
        if weight > 0
        and config.version_of(key) not in (baseline,)
        and config.version_of(key) in ready
    )
    if others:
        return Pair(others[0][1], baseline, "canary")
    return None


def pair_kind(config: ModelConfig, candidate: int) -> str:
    """ "shadow" when `candidate` is the config's shadow (paired rows exist), else "canary"."""
    if config.shadow is not None and config.version_of(config.shadow) == candidate:
        return "shadow"
    return "canary"
