"""The friendly REST API (TF-Serving-like rows): `{"instances": [...]}` in, one prediction
per instance out, `{"label", "probabilities": {label: p}}` each; and its read side (the
listing, the cards, the metrics).

Decoding is the selected version's: its adapter's request schema, plain-row fast path and
rows, so a model whose versions take different inputs is decoded right for each version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError
from starlette.types import Receive

from app.adapters import NO_WARNINGS, InputAdapter, RowWarnings, named_rows
from app.budget import RequestBudget
from app.context import RequestContext
from app.core import InferenceCore
from app.errors import BadRequest, InvalidInput, NotFound, PayloadTooLarge, ServingError
from app.repository import CardedVersion, ModelState, ServedVersion
from app.tasks import task_of

# Bodies over this are parsed on a decoding thread: parsing ~1,000 28x28 images as JSON takes
# milliseconds, too long for the event loop that answers every other request meanwhile.
LARGE_BODY_BYTES = 64 * 1024
# Commas beyond the values of the largest valid request (keys and metadata of the JSON).
VALUE_COUNT_SLACK = 256


def _format_location(location: Sequence[int | str]) -> str:
    # ("instances", 0, "array", 3, 5) -> "instances[0][3][5]": the union tag is noise.
    text = ""
    for position, part in enumerate(location):
        if isinstance(part, int):
            text += f"[{part}]"
        elif position == 2 and part in ("array", "object") and location[0] == "instances":
            continue
        else:
            text += f".{part}" if text else part
    return text or "body"


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
    problems = [f"{_format_location(e['loc'])}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidInput("; ".join(problems) + more + f". Each instance: {instance_help}")


def parse_instances(adapter: InputAdapter, body: bytes) -> list[Any]:
    """Validate a `{"instances": [...]}` body against the version's schema."""
    try:
        parsed = adapter.request_model.model_validate_json(body)
    except ValidationError as exc:
        raise describe_validation_error(exc, adapter.instance_help) from None
    instances: list[Any] = parsed.instances  # type: ignore[attr-defined]
    return instances


def encode_predictions(
    labels: Sequence[str],
    probabilities: np.ndarray,
    warnings: Sequence[RowWarnings] | None = None,
) -> list[dict[str, Any]]:
    """`(N, C)` probabilities -> one `{"label", "probabilities", "warnings"}` per row (the
    first most probable class on a tie, as NumPy's argmax); `warnings` per row, as the
    adapter found them (None or missing rows: none)."""
    # Plain Python over a few classes: on the event loop, 4x cheaper than NumPy's calls.
    rows = probabilities.tolist()
    if not warnings or len(warnings) != len(rows):
        warnings = [NO_WARNINGS] * len(rows)
    return [
        {
            "label": labels[max(range(len(row)), key=row.__getitem__)],
            "probabilities": dict(zip(labels, row, strict=True)),
            "warnings": [{"code": w.code, "message": w.message} for w in row_warnings],
        }
        for row, row_warnings in zip(rows, warnings, strict=True)
    ]


def with_warnings(
    predictions: list[dict[str, Any]], warnings: Sequence[RowWarnings] | None
) -> list[dict[str, Any]]:
    """Each prediction object with its row's `warnings` (a list of `{code, message}`; empty
    when the input looks like the training data), whatever the task."""
    if not warnings or len(warnings) != len(predictions):
        for prediction in predictions:
            prediction["warnings"] = []
        return predictions
    for prediction, found in zip(predictions, warnings, strict=True):
        prediction["warnings"] = [{"code": w.code, "message": w.message} for w in found]
    return predictions


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
        self.settings = core.settings

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
        probabilities = await self.core.infer(entry, rows, context)
        return self.encode(entry, probabilities, context.warnings)

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
                self.check_value_count(entry, values)
                self.core.admit(entry, max(1, values // per_row), context)
            return await self.core.off_loop(
                lambda budget: self.json_rows(entry, body, budget), context, receive
            )
        rows = adapter.plain_rows(body, self.settings.limits.max_instances)
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
            "predictions": with_warnings(
                task_of(entry.card).encode_v1(entry.card, probabilities), warnings
            ),
        }

    def json_rows(self, entry: CardedVersion, body: bytes, budget: RequestBudget) -> list[Any]:
        """A `{"instances": [...]}` body -> rows (on a decoding thread; its values were
        counted already)."""
        adapter = entry.kind
        plain = adapter.plain_rows(body, self.settings.limits.max_instances)
        if plain is not None:
            return plain
        return _rows(adapter, parse_instances(adapter, body), budget)

    def check_value_count(self, entry: CardedVersion, values: int) -> None:
        """413 before parsing when a JSON body holds more values than the largest valid
        request can (counted by its commas: a few milliseconds for 8 MB, where parsing would
        take a few hundred), so a body of a million zeros costs nothing to refuse."""
        limit = entry.kind.max_values(self.settings.limits.max_instances)
        if limit is not None and values > limit + VALUE_COUNT_SLACK:
            raise PayloadTooLarge(
                f"the body holds {values} values or more, more than "
                f"{self.settings.limits.max_instances} instances of model {entry.name} can have "
                f"({limit}); send at most {self.settings.limits.max_instances} instances per "
                "request"
            )

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
        probabilities = await self.core.infer(entry, [row], context)
        return self.encode(entry, probabilities, context.warnings)

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
        batching = self.settings.batching.for_model(name)
        status = entry.status()
        return {
            "card": carded.card.model_dump(mode="json"),
            "serving": {
                "state": status["state"],
                "reason": status.get("reason"),
                "device": status.get("device"),
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
