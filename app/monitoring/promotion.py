"""From shadow and canary to a decision: compare a candidate version with the version it
would replace, on live traffic and feedback, and promote or roll it back by the rules of the
model's config.json (`promotion` block), the same on every replica.

    shadow copies --(bounded queue)--> shadow_pairs      prediction_rows (+ feedback)
                                  \\                     /
                  every SYNERGY_PROMOTION_POLL_S: flush, read new decisions, judge
                                  |
              promotion_decisions (the store)  ->  the routing overlay (every replica)

- The comparison (`compare`) is computed from the store on demand by bounded queries
  (`app.monitoring.evidence`), never on the prediction path; the statistics and the verdict
  are `app.monitoring.comparison`'s.
- Decisions are rows of the store: each replica reads the new ones every poll and lays them
  over config.json (`app.repository.promotion`), so all replicas route alike within one
  poll interval. Automatic decisions take a per-model lock in PostgreSQL and are recorded
  only if no decision is in force for the candidate: one replica decides, the others follow.
- Every decision this replica records is logged and counted
  (`synergy_promotion_decisions_total{model, action, decided_by}`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry

from app.errors import BadRequest, NotFound, Unavailable
from app.monitoring.comparison import (
    ShadowCounts,
    Verdict,
    VersionCounts,
    judge_canary,
    judge_shadow,
    verdict_json,
)
from app.monitoring.comparison_json import canary_json, shadow_json
from app.monitoring.evidence import Evidence
from app.monitoring.shadow import ShadowRows
from app.repository.promotion import (
    ACTIONS,
    Decision,
    Pair,
    default_pair,
    in_force,
    overlay,
    pair_kind,
    resolve,
    routed_version,
)
from app.repository.registry import ModelRegistry, ServedModel
from app.repository.rules import PromotionRules
from app.repository.versions import ModelState
from app.series import PromotionSeries

if TYPE_CHECKING:
    from app.core import ShadowEvent
    from app.monitoring.monitor import Monitor
    from app.settings import PromotionSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class Promoter:
    """Comparisons, automatic and manual decisions, and the routing overlay of one replica."""

    def __init__(
        self,
        settings: PromotionSettings,
        registry: ModelRegistry,
        monitor: Monitor,
        metrics: CollectorRegistry,
        replica: str | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.monitor = monitor
        self.replica = replica or socket.gethostname()
        self.evidence: Evidence | None = None
        self._decisions: dict[str, list[Decision]] = collections.defaultdict(list)
        self._last_id = 0
        self._judged: dict[tuple[str, int, int], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="promotion")
        self.series = PromotionSeries(metrics)
        self.shadow = ShadowRows(self.series)
        registry.overlay = self._overlay

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Read the decisions in force (before models serve, so a restart routes as before)
        and begin polling; a replica without a store compares and decides nothing."""
        store = self.monitor.store
        if store is None:
            return
        self.evidence = Evidence(store)
        try:
            await self._sync()
        except Exception as exc:  # noqa: BLE001 - logged; the poll tries again
            log.error("reading promotion decisions failed: %s", type(exc).__name__)
        self._task = asyncio.create_task(self._poll(), name="promotion")

    async def stop(self) -> None:
        """Stop polling and write the shadow rows still queued."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.evidence is not None:
            await self._in_thread(self._flush)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.promotion_poll_s)
            try:
                await self.tick()
            except Exception:  # the next poll tries again
                log.exception("promotion poll failed")

    async def tick(self) -> None:
        """One poll: store the queued shadow rows, follow new decisions, judge by the rules."""
        await self._in_thread(self._flush)
        await self._sync()
        for model in list(self.registry.models.values()):
            rules = model.config.promotion
            if rules is None or not rules.auto or model.unloaded:
                continue
            pair = default_pair(model.config, self._ready(model))
            if pair is None or pair.candidate in in_force(self._decisions[model.name]):
                continue
            # Counts only (no drift) at every poll; the whole comparison for a decision.
            verdict, _ = await self._in_thread(self._evaluate, model, pair, rules, False)
            key = (model.name, pair.candidate, pair.baseline)
            if verdict.look is None or verdict.look <= self._judged.get(key, -1):
                continue
            self._judged[key] = verdict.look
            if verdict.action in ("promote", "rollback"):
                _, evidence = await self._in_thread(self._evaluate, model, pair, rules)
                await self._record(model.name, pair, verdict.action, "rule", verdict.text, evidence)

    # ------------------------------------------------------------------ shadow rows
    def record_shadow(self, event: ShadowEvent) -> None:
        """Queue a shadow copy's rows (on the loop, in the shadow's task): a deque append."""
        self.shadow.record(event, stored=self.evidence is not None)

    def _flush(self) -> None:
        if self.evidence is not None:
            self.shadow.flush(self.evidence)

    # ------------------------------------------------------------------ decisions
    def _overlay(self, model: ServedModel) -> Any:
        decisions = self._decisions.get(model.name)
        return overlay(model.config, decisions) if decisions else None

    async def _sync(self) -> None:
        """Take the decisions recorded since the last poll (by any replica) into routing."""
        assert self.evidence is not None
        new = await self._in_thread(self.evidence.decisions, self._last_id)
        self._apply(new)

    def _apply(self, new: list[Decision]) -> None:
        changed: set[str] = set()
        for decision in new:
            if decision.id <= self._last_id:
                continue
            self._last_id = decision.id
            self._decisions[decision.model].append(decision)
            changed.add(decision.model)
        for name in changed:
            self.registry.refresh(name)
        if changed:
            self.registry.changed()

    async def _record(
        self,
        name: str,
        pair: Pair,
        action: str,
        decided_by: str,
        verdict: str,
        evidence: dict[str, Any],
    ) -> Decision | None:
        assert self.evidence is not None
        decision = await self._in_thread(
            lambda: self.evidence.decide(  # type: ignore[union-attr]
                name,
                pair.candidate,
                pair.baseline,
                action,
                decided_by,
                verdict,
                evidence,
                self.replica,
                only_if_undecided=decided_by == "rule",
            )
        )
        if decision is None:  # another replica decided first: follow its decision
            await self._sync()
            return None
        self.series.decisions_total.labels(name, action, decided_by).inc()
        (log.warning if action == "rollback" else log.info)(
            "model %s: version %d %s against version %d by %s: %s",
            name,
            pair.candidate,
            {"promote": "promoted", "rollback": "rolled back", "reset": "reset"}[action],
            pair.baseline,
            decided_by,
            verdict,
        )
        await self._sync()
        return decision

    async def decide(
        self,
        name: str,
        action: str,
        candidate: str | None,
        baseline: str | None,
        reason: str,
    ) -> dict[str, Any]:
        """A decision by hand (the authenticated API): recorded with the comparison at that
        moment as its evidence, in force on every replica within a poll interval."""
        if action not in ACTIONS:
            raise BadRequest(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        model = self.registry.model(name)
        self._require()
        pair = self._pair(model, candidate, baseline)
        try:
            comparison = await self.compare(name, str(pair.candidate), str(pair.baseline))
        except Exception as exc:  # noqa: BLE001 - a decision by hand needs no evidence
            comparison = {"error": type(exc).__name__}
        evidence = {"reason": reason, "comparison": comparison}
        text = reason or f"{action} by hand"
        decision = await self._record(name, pair, action, "manual", text, evidence)
        assert decision is not None
        return decision.to_json()

    async def decisions(self, name: str) -> dict[str, Any]:
        """Every decision about a model, newest first, and those in force."""
        self.registry.model(name)
        self._require()
        assert self.evidence is not None
        found = await self._in_thread(self.evidence.decisions, 0, name)
        return {
            "model": name,
            "in_force": [d.to_json() for d in in_force(found).values()],
            "decisions": [d.to_json() for d in reversed(found)],
        }

    # ------------------------------------------------------------------ comparison
    async def compare(
        self, name: str, candidate: str | None, baseline: str | None
    ) -> dict[str, Any]:
        """The comparison of two versions of a model (see the module docstring)."""
        model = self.registry.model(name)
        self._require()
        rules = model.config.promotion or PromotionRules()
        if candidate is None and default_pair(model.config, self._ready(model)) is None:
            return {
                "model": name,
                "kind": None,
                "candidate": None,
                "baseline": None,
                "verdict": {
                    "action": "none",
                    "text": f"model {name} has no shadow or canary to compare: config.json "
                    "sets one (shadow, or a traffic split), or name one with "
                    "?candidate=<version or label>",
                    "look": None,
                    "alpha": rules.significance_level,
                },
                "rules": {**rules.model_dump(), "from_config": model.config.promotion is not None},
                "decision": None,
            }
        pair = self._pair(model, candidate, baseline)
        _, evidence = await self._in_thread(self._evaluate, model, pair, rules)
        evidence["rules"] = {
            **rules.model_dump(),
            "from_config": model.config.promotion is not None,
        }
        decision = in_force(self._decisions.get(name, [])).get(pair.candidate)
        evidence["decision"] = decision.to_json() if decision is not None else None
        return evidence

    def has_comparison(self, name: str) -> bool:
        """Whether the model has a candidate to compare or a decision (for the report)."""
        model = self.registry.models.get(name)
        if model is None or self.evidence is None:
            return False
        return bool(self._decisions.get(name)) or (
            default_pair(model.config, self._ready(model)) is not None
        )

    def _pair(self, model: ServedModel, candidate: str | None, baseline: str | None) -> Pair:
        ready = self._ready(model)
        default = default_pair(model.config, ready)
        if candidate is None and default is None:
            raise NotFound(
                f"model {model.name} has no shadow or canary to compare; name one with "
                "?candidate=<version or label>"
            )
        versions = [v for v in model.versions if v != 0]
        routing = model.routing
        cand = resolve(candidate, routing, versions) if candidate else default.candidate  # type: ignore[union-attr]
        if baseline:
            base = resolve(baseline, routing, versions)
        elif default is not None and default.candidate == cand:
            base = default.baseline
        else:
            base = routed_version(model.config, ready) or 0
        if cand == base:
            raise BadRequest(f"the candidate and the baseline are both version {cand}")
        kind = pair_kind(model.config, cand)
        if kind == "shadow" and default is not None and default.baseline != base:
            kind = "canary"  # the shadow's pairs are with the routed version only
        return Pair(cand, base, kind)

    @staticmethod
    def _ready(model: ServedModel) -> list[int]:
        return [v for v, e in model.versions.items() if e.state is ModelState.READY and v]

    def _evaluate(
        self, model: ServedModel, pair: Pair, rules: PromotionRules, details: bool = True
    ) -> tuple[Verdict, dict[str, Any]]:
        """(verdict, the comparison's JSON) from the store (blocking); without `details`,
        the canary's drift is left out (it informs people, not the verdict)."""
        assert self.evidence is not None
        window = self.settings.promotion_window_rows
        head: dict[str, Any] = {
            "model": model.name,
            "kind": pair.kind,
            # Labels as config.json names them (a promotion moves `stable` in routing only).
            "candidate": {"version": pair.candidate, "label": _label(model, pair.candidate)},
            "baseline": {"version": pair.baseline, "label": _label(model, pair.baseline)},
            "window_rows": window,
        }
        if pair.kind == "shadow":
            counts = self.evidence.shadow_counts(model.name, pair.candidate, pair.baseline, window)
            verdict = judge_shadow(counts, rules)
            body = self._shadow_json(model, pair, counts)
        else:
            since = self.evidence.first_row_id(model.name, pair.candidate)
            candidate = self.evidence.version_counts(model.name, pair.candidate, since or 0, window)
            baseline = self.evidence.version_counts(model.name, pair.baseline, since or 0, window)
            if since is None:
                baseline = VersionCounts()
            for version, counts_ in ((pair.candidate, candidate), (pair.baseline, baseline)):
                self._serving(model, version, counts_)
            verdict = judge_canary(candidate, baseline, rules)
            body = self._canary_json(model, pair, candidate, baseline, details)
        return verdict, {**head, **body, "verdict": verdict_json(verdict)}

    @staticmethod
    def _serving(model: ServedModel, version: int, counts: VersionCounts) -> None:
        entry = model.versions.get(version)
        if entry is None:
            return
        snapshot = entry.stats.snapshot()
        latency: Any = snapshot["latency_ms"]
        counts.requests = int(snapshot["requests"])  # type: ignore[call-overload]
        counts.errors = int(snapshot["errors"])  # type: ignore[call-overload]
        counts.p99_ms = latency["p99"]
        counts.latency_samples = int(latency["window"])

    def _shadow_json(self, model: ServedModel, pair: Pair, counts: ShadowCounts) -> dict[str, Any]:
        base_serving = VersionCounts()
        if model.versions.get(pair.baseline) is not None:
            self._serving(model, pair.baseline, base_serving)
        latencies = self.shadow.latencies_ms.get((model.name, pair.candidate))
        return shadow_json(self._labels(model, pair), counts, base_serving, latencies)

    def _canary_json(
        self,
        model: ServedModel,
        pair: Pair,
        candidate: VersionCounts,
        baseline: VersionCounts,
        details: bool = True,
    ) -> dict[str, Any]:
        drift = (
            {
                "baseline": self._drift(model, pair.baseline),
                "candidate": self._drift(model, pair.candidate),
            }
            if details
            else {}
        )
        return canary_json(candidate, baseline, drift)

    def _drift(self, model: ServedModel, version: int) -> dict[str, Any]:
        entry = model.versions.get(version)
        carded = entry.carded if entry is not None else None
        store = self.monitor.store
        if carded is None or store is None:
            return {"note": "version not served"}
        try:
            drift: dict[str, Any] = self.monitor._drift(carded, store, None)
        except Exception as exc:  # noqa: BLE001 - drift is context, not the verdict
            return {"note": f"drift unavailable ({type(exc).__name__})"}
        return {
            key: drift[key] for key in ("rows", "distinct_rows", "flagged", "note") if key in drift
        } | {
            "flagged_statistics": [s["statistic"] for s in drift.get("statistics", []) if s["flag"]]
        }

    @staticmethod
    def _labels(model: ServedModel, pair: Pair) -> list[str]:
        for version in (pair.baseline, pair.candidate):
            entry = model.versions.get(version)
            if entry is not None and entry.card is not None:
                return list(entry.card.labels)
        return []

    # ------------------------------------------------------------------ helpers
    def _require(self) -> None:
        self.monitor._require_store()  # the same 404/503 as monitoring
        if self.evidence is None:
            raise Unavailable("the promotion tables are not available yet", retry_after_s=5)

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)


def _label(model: ServedModel, version: int) -> str:
    return next((k for k, v in model.config.labels.items() if v == version), "")
