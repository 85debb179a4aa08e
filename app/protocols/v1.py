"""The friendly REST API (TF-Serving-like rows): `{"instances": [...]}` in, one prediction
per instance out, `{"label", "probabilities": {label: p}}` each; and its read side (the
listing, the cards, the metrics).

Decoding is the selected version's: its adapter's request schema, plain-row fast path and
rows, so a model whose versions take different inputs is decoded right for each version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from app.budget import RequestBudget
from app.codecs.predictions import with_warnings
from app.context import RequestContext
from app.core import InferenceCore
from app.decoding import LARGE_BODY_BYTES, Receive
from app.errors import BadRequest, InvalidInput, NotFound, PayloadTooLarge, ServingError
from app.kinds import InputAdapter, RowWarnings, named_rows
from app.repository import CardedVersion, ModelState, ServedVersion
from app.schemas import problems


def _instance_location(error: Mapping[str, Any]) -> str:
    # ("instances", 0, "array", 3, 5) -> "instances[0][3][5]": the union's tag is noise.
    parts = list(error["loc"])
    if len(parts) > 2 and parts[0] == "instances" and parts[2] in ("array", "object"):
        del parts[2]
    return problems.location(parts)


def describe_validation_error(exc: ValidationError, instance_help: str) -> ServingError:
    """Turn pydantic's errors on a request body into one clear client error."""
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "json_invalid":
            return BadRequest(
                f'the body is not valid JSON ({error["msg"]}); send {{"instances": [...]}}'
            )
        if error["type"] == "too_long" and tuple(error["loc"]) == ("instances",):
            return PayloadTooLarge(
                f"too many instances: at most {error['ctx']['max_length']} per request; split "
                "them over several requests"
            )
        if tuple(error["loc"]) == ("instances",) and error["type"] == "too_short":
            return InvalidInput('"instances" is empty: send at least one instance')
        if tuple(error["loc"]) == ("instances",) and error["type"] == "missing":
            return InvalidInput(
                'the body must be a JSON object {"instances": [...]}; "instances" is missing'
            )
        if not error["loc"] and error["type"] == "model_type":
            return InvalidInput('the body must be a JSON object {"instances": [...]}')
    described = problems.describe(errors, where=_instance_location)
    return InvalidInput(f"{described}. Each instance: {instance_help}")


def name_instance(exc: ServingError) -> ServingError:
    """An error about one row (`exc.instance`) worded the V1 way: `instances[3]: ...`."""
    if exc.instance is not None:
        exc.message = f"instances[{exc.instance}]: {exc.message}"
        exc.instance = None
    return exc


def parse_instances(adapter: InputAdapter, body: bytes) -> list[Any]:
    """Validate a `{"instances": [...]}` body against the version's schema."""
    try:
        parsed = adapter.request_model.model_validate_json(body)
    except ValidationError as exc:
        raise describe_validation_error(exc, adapter.instance_help) from None
    instances: list[Any] = parsed.instances  # type: ignore[attr-defined]
    return instances


def _rows(
    adapter: InputAdapter, instances: Sequence[Any], budget: RequestBudget | None
) -> list[Any]:
    if budget is None:
        return named_rows(adapter.to_row, instances)

    def to_row(instance: Any) -> Any:
        budget.check()
        return adapter.to_row(instance, budget)

    return named_rows(to_row, instances)


class V1Protocol:
    """`:predict`, `:predict-image` and the model listing, over the core."""

    def __init__(self, core: InferenceCore) -> None:
        self.core = core
        self.registry = core.registry
        self.limits = core.limits

    # ------------------------------------------------------------------ predictions
    async def predict(
        self,
        name: str,
        version: int | None,
        body: bytes,
        context: RequestContext,
        receive: Receive | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """The whole `:predict` path for one request body (`label`: the label route's).

        A small body is parsed on the event loop (microseconds); a large one, and images to
        decode, on a decoding thread (see `InferenceCore.off_loop`), so the loop stays free.
        """
        context.protocol = "v1"
        entry = self.core.select(name, version, context, label)
        rows = await self.decode(entry, body, context, receive)
        try:  # inline, not `_infer`: one coroutine less per request on the hot path
            probabilities = await self.core.infer(entry, rows, context)
        except ServingError as exc:
            name_instance(exc)
            raise
        return self.encode(entry, probabilities, context.warnings)

    async def _infer(self, entry: ServedVersion, rows: list[Any], context: RequestContext) -> Any:
        try:
            return await self.core.infer(entry, rows, context)
        except ServingError as exc:
            name_instance(exc)
            raise

    async def decode(
        self,
        entry: ServedVersion,
        body: bytes,
        context: RequestContext,
        receive: Receive | None = None,
    ) -> list[Any]:
        """A `{"instances": [...]}` body -> the version's rows (an explainer reuses this)."""
        adapter = entry.kind
        if len(body) > LARGE_BODY_BYTES:
            per_row = adapter.max_values(1)
            if per_row is not None:
                # Refuse what cannot be served before paying for the parse: too many values,
                # or at least values // per_row rows that the model has no room for now.
                values = await self.core.off_loop(lambda _: body.count(b",") + 1, context, receive)
                self.core.check_value_count(entry, values)
                self.core.admit(entry, max(1, values // per_row), context)
            return await self.core.off_loop(
                lambda budget: self.json_rows(entry, body, budget), context, receive
            )
        rows = adapter.plain_rows(body, self.limits.max_instances)
        if rows is not None:
            return rows
        instances = parse_instances(adapter, body)
        if adapter.slow_rows and any(isinstance(i, BaseModel) for i in instances):
            return await self.core.off_loop(
                lambda budget: _rows(adapter, instances, budget), context, receive
            )
        return _rows(adapter, instances, None)

    def encode(
        self,
        entry: CardedVersion,
        probabilities: np.ndarray,
        warnings: Sequence[RowWarnings] | None = None,
    ) -> dict[str, Any]:
        """The `:predict` response for a version's probabilities (and rows' warnings)."""
        return {
            "model": entry.name,
            "version": entry.version,
            "predictions": with_warnings(entry.task.encode_v1(entry.card, probabilities), warnings),
        }

    def json_rows(self, entry: CardedVersion, body: bytes, budget: RequestBudget) -> list[Any]:
        """A `{"instances": [...]}` body -> rows (on a decoding thread; its values were
        counted already)."""
        adapter = entry.kind
        plain = adapter.plain_rows(body, self.limits.max_instances)
        if plain is not None:
            return plain
        return _rows(adapter, parse_instances(adapter, body), budget)

    async def predict_image(
        self,
        name: str,
        version: int | None,
        data: bytes,
        context: RequestContext,
        receive: Receive | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        """One uploaded image file -> one prediction."""
        context.protocol = "v1"
        entry = self.core.select(name, version, context, label)
        adapter = entry.kind
        if not adapter.takes_image_files:
            raise NotFound(
                f"model {name} does not take images, so it has no :predict-image; "
                f"use :predict with {adapter.instance_help}"
            )
        context.rows = 1
        row = await self.core.off_loop(
            lambda budget: adapter.image_to_row(data, budget), context, receive
        )
        probabilities = await self._infer(entry, [row], context)
        return self.encode(entry, probabilities, context.warnings)

    # ------------------------------------------------------------------ explanations
    async def explain(
        self,
        name: str,
        version: int | None,
        body: bytes,
        context: RequestContext,
        receive: Receive | None = None,
    ) -> dict[str, Any]:
        """`:explain`: the `:predict` body decoded the same way -> `core.explain` -> one
        explanation per instance."""
        entry = self.core.select(name, version, context)
        try:
            # Always parsed on a decoding thread: explanations are never on the hot path, and
            # the same call handles every input form (and images to decode) within a budget.
            rows = await self.core.off_loop(
                lambda budget: self.json_rows(entry, body, budget), context, receive
            )
        except ServingError as exc:
            self.core.explain_refused(entry, exc)
            raise
        return await self._explain(entry, rows, context)

    async def explain_image(
        self,
        name: str,
        version: int | None,
        data: bytes,
        context: RequestContext,
        receive: Receive | None = None,
    ) -> dict[str, Any]:
        """`:explain-image`: one uploaded image file -> one explanation."""
        entry = self.core.select(name, version, context)
        adapter = entry.kind
        if not adapter.takes_image_files:
            raise NotFound(
                f"model {name} does not take images, so it has no :explain-image; use "
                f":explain with {adapter.instance_help}"
            )
        try:
            row = await self.core.off_loop(
                lambda budget: adapter.image_to_row(data, budget), context, receive
            )
        except ServingError as exc:
            self.core.explain_refused(entry, exc)
            raise
        return await self._explain(entry, [row], context)

    async def _explain(
        self, entry: ServedVersion, rows: list[Any], context: RequestContext
    ) -> dict[str, Any]:
        try:
            explanations = await self.core.explain(entry, rows, context)
        except ServingError as exc:
            name_instance(exc)
            raise
        return {"model": entry.name, "version": entry.version, "explanations": explanations}

    # ------------------------------------------------------------------ read side
    def list_models(self) -> dict[str, Any]:
        """Every model, its versions and their state."""
        summaries = []
        for name in self.registry.names:
            versions = self.registry.versions(name)
            newest = self.registry.find(name)
            card = newest.card
            summaries.append(
                {
                    "name": name,
                    "latest_version": newest.version if newest.state is ModelState.READY else None,
                    "versions": [versions[v].status() for v in sorted(versions)],
                    "framework": card.framework if card else None,
                    "task": card.task if card else None,
                    "input_kind": card.input.kind if card else None,
                    "labels": card.labels if card else None,
                    "description": card.description if card else None,
                    **self.registry.model(name).status(),
                }
            )
        return {"models": summaries}

    def model_detail(self, name: str, version: int | None) -> dict[str, Any]:
        """The card plus how this server runs the model."""
        carded = self.registry.carded(name, version)
        entry = self.registry.find(name, carded.version)
        batching = self.core.batching.for_model(name)
        status = entry.status()
        return {
            "card": carded.card.model_dump(mode="json"),
            "serving": {
                "state": status["state"],
                "reason": status.get("reason"),
                "device": status.get("device"),
                "engine": status.get("engine"),
                "load_seconds": entry.load_seconds,
                **self.registry.model(name).status(),
                **batching.model_dump(),
            },
        }

    def model_metrics(self, name: str, version: int | None) -> dict[str, Any]:
        """Held-out metrics from the card plus live serving stats."""
        entry = self.registry.carded(name, version)
        return {
            "model": entry.name,
            "version": entry.version,
            "held_out": None
            if entry.card.metrics is None
            else entry.card.metrics.model_dump(mode="json"),
            "serving": entry.stats.snapshot(),
        }
