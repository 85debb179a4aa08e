"""From shadow and canary to a decision: compare a candidate version with the version it
would replace, on live traffic and feedback, and promote or roll it back by the rules of the
model's config.json (`promotion` block), the same on every replica.

    shadow copies --(bounded queue)--> shadow_pairs      prediction_rows (+ feedback)
                                  \\                     /
                  every SYNERGY_PROMOTION_POLL_S: flush, read new decisions, judge
                                  |
              promotion_decisions (the store)  ->  the routing overlay (every replica)

- The comparison (`compare`) is a running tally (`app.monitoring.tallies`) brought up to
  date from what is new in the store at each poll or request, never on the prediction
  path; the statistics and the verdict are `app.monitoring.comparison`'s (labels) and
  `app.monitoring.comparison_values`'s (values), as the task picks
  (`app.monitoring.comparers`).
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
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from app.errors import BadRequest
from app.monitoring.evidence import Evidence
from app.monitoring.promotion_compare import Comparisons
from app.monitoring.shadow import ShadowRows
from app.monitoring.tallies import Tallies
from app.repository.promotion import (
    ACTIONS,
    Decision,
    Pair,
    default_pair,
    in_force,
    overlay,
)
from app.repository.registry import ModelRegistry, ServedModel
from app.series import PromotionSeries

if TYPE_CHECKING:
    from app.events import ShadowEvent
    from app.monitoring.monitor import Monitor
    from app.settings import PromotionSettings

log = logging.getLogger(__name__)


class Promoter(Comparisons):
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
        self.tallies: Tallies | None = None
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
        self.tallies = Tallies(
            self.evidence, self.settings.promotion_window_rows, self.settings.promotion_poll_s
        )
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
