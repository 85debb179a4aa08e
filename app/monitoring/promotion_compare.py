"""The comparison side of promotion: a candidate version against its baseline, from the store
(bounded queries, `app.monitoring.evidence`) and the serving statistics, judged by
`app.monitoring.comparison`; the base of `app.monitoring.promotion.Promoter`, which decides."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from app.errors import BadRequest, NotFound, Unavailable
from app.monitoring.comparers import LABELS, VALUES
from app.monitoring.comparison import Verdict, VersionCounts, verdict_json
from app.monitoring.evidence import Evidence
from app.monitoring.shadow import ShadowRows
from app.monitoring.tallies import Tallies
from app.repository.promotion import (
    Decision,
    Pair,
    default_pair,
    in_force,
    pair_kind,
    resolve,
    routed_version,
)
from app.repository.registry import ModelRegistry, ServedModel
from app.repository.rules import PromotionRules
from app.repository.versions import ModelState
from app.tasks import task_of

if TYPE_CHECKING:
    from app.monitoring.monitor import Monitor
    from app.settings import PromotionSettings

T = TypeVar("T")


class Comparisons:
    """Comparisons of two versions of a model, from the store (the state is `Promoter`'s)."""

    settings: PromotionSettings
    registry: ModelRegistry
    monitor: Monitor
    evidence: Evidence | None
    tallies: Tallies | None
    shadow: ShadowRows
    _decisions: dict[str, list[Decision]]
    _executor: ThreadPoolExecutor

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
        assert self.tallies is not None
        comparer = self._comparer(model, pair)
        head: dict[str, Any] = {
            "model": model.name,
            "kind": pair.kind,
            # Labels as config.json names them (a promotion moves `stable` in routing only).
            "candidate": {"version": pair.candidate, "label": _label(model, pair.candidate)},
            "baseline": {"version": pair.baseline, "label": _label(model, pair.baseline)},
        }
        body: dict[str, Any]
        if pair.kind == "shadow":
            entry = model.versions.get(pair.baseline)
            tolerance = comparer.tolerance(rules, entry.card if entry is not None else None)
            counts = self.tallies.shadow(
                comparer, model.name, pair.candidate, pair.baseline, tolerance
            )
            verdict = comparer.judge_shadow(counts, rules)
            base_serving = VersionCounts()
            if entry is not None:
                self._serving(model, pair.baseline, base_serving)
            latencies = self.shadow.latencies_ms.get((model.name, pair.candidate))
            body = comparer.shadow_body(
                self._labels(model, pair),
                counts,
                base_serving,
                latencies,
            )
        else:
            candidate, baseline = self.tallies.canary(
                comparer, model.name, pair.candidate, pair.baseline
            )
            for version, counts_ in ((pair.candidate, candidate), (pair.baseline, baseline)):
                self._serving(model, version, counts_)
            verdict = comparer.judge_canary(candidate, baseline, rules)
            drift = (
                {
                    "baseline": self._drift(model, pair.baseline),
                    "candidate": self._drift(model, pair.candidate),
                }
                if details
                else {}
            )
            body = comparer.canary_body(candidate, baseline, drift)
        return verdict, {**head, **body, "verdict": verdict_json(verdict)}

    @staticmethod
    def _comparer(model: ServedModel, pair: Pair) -> Any:
        """The task's comparison (labels or values), from either version's card."""
        for version in (pair.baseline, pair.candidate):
            entry = model.versions.get(version)
            if entry is not None and entry.card is not None:
                labels: Any = LABELS
                return task_of(entry.card).comparer(labels, VALUES)
        return LABELS

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
