"""ExplanationService: `:explain` bodies -> rows (as `:predict` parses them) -> explanations.

Protocol-neutral: the routes in app.api.explain only read bodies and write JSON. Rows come
from the same adapters and parsing as predictions (named features, arrays, base64 images,
uploads, raw text), so an input `:predict` accepts is explained as it is predicted.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from starlette.types import Receive

from app.adapters import InputAdapter, TextAdapter
from app.context import RequestContext
from app.errors import NotFound, PayloadTooLarge, ServingError
from app.explain.base import Explainer
from app.explain.image import IntegratedGradients
from app.explain.table import TableShapley, WordShapley
from app.explain.tabular import TabularExplainer
from app.explain.text import TextShapley
from app.explain.worker import Check, ExplainWorker
from app.repository import ServedVersion
from app.runtimes import Model, NoInputGradients
from app.schemas.card import ImageInput, RawTextInput, TableInput, TabularInput
from app.series import ExplainSeries
from app.service import PredictionService
from app.settings import ExplainSettings


class NotExplainable(ServingError):
    """This model cannot be explained on this server (its runtime or backend has no input
    gradients)."""

    status_code = 501


class ExplanationService:
    """Everything between an `:explain` route and the explainers."""

    def __init__(self, settings: ExplainSettings, service: PredictionService) -> None:
        self.settings = settings
        self.service = service
        self.metrics = ExplainSeries(service.metrics.registry)
        registry = service.registry
        self.worker = ExplainWorker(
            max_queue=settings.explain_max_queue,
            max_per_caller=settings.explain_max_per_caller,
            niceness=settings.explain_niceness,
            pressure=lambda: any(
                entry.served is not None and entry.served.batcher.in_flight_rows > 0
                for entry in registry
            ),
            max_yield_s=settings.explain_max_yield_ms / 1000.0,
        )
        # (name, version) -> (the runtime it was built for, its explainer); built on first use
        # on the worker thread (the gradient function compiles then).
        self._explainers: dict[tuple[str, int], tuple[Any, Explainer]] = {}
        registry.listeners.append(self._forget_unloaded)
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Shutdown: the worker ends after its current job."""
        self.worker.stop()

    # ------------------------------------------------------------------ requests
    async def explain_json(
        self,
        name: str,
        version: int | None,
        body: bytes,
        context: RequestContext,
        receive: Receive | None = None,
    ) -> dict[str, Any]:
        """The whole `:explain` path for one `{"instances": [...]}` body."""
        entry = self.service.core.select(name, version, context)
        try:
            # Always parsed on a decoding thread: explanations are never on the hot path, and
            # the same call handles every input form (and images to decode) within a budget.
            rows = await self.service.core.off_loop(
                lambda budget: self.service.v1.json_rows(entry, body, budget), context, receive
            )
            return await self._explain(entry, rows, context)
        except ServingError as exc:
            self.metrics.requests.labels(entry.name, str(entry.version), exc.status_code).inc()
            raise

    async def explain_image(
        self,
        name: str,
        version: int | None,
        data: bytes,
        context: RequestContext,
        receive: Receive | None = None,
    ) -> dict[str, Any]:
        """One uploaded image file -> one explanation."""
        entry = self.service.core.select(name, version, context)
        adapter = entry.kind
        if not adapter.takes_image_files:
            raise NotFound(
                f"model {name} does not take images, so it has no :explain-image; use "
                f":explain with {adapter.instance_help}"
            )
        try:
            row = await self.service.core.off_loop(
                lambda budget: adapter.image_to_row(data, budget), context, receive
            )
            return await self._explain(entry, [row], context)
        except ServingError as exc:
            self.metrics.requests.labels(entry.name, str(entry.version), exc.status_code).inc()
            raise

    async def _explain(
        self, entry: ServedVersion, rows: list[Any], context: RequestContext
    ) -> dict[str, Any]:
        limit = self.settings.explain_max_instances
        if len(rows) > limit:
            raise PayloadTooLarge(
                f"too many instances to explain: at most {limit} per request (explaining one "
                "costs hundreds of model calls); split them over several requests"
            )
        context.rows = len(rows)
        deadline = context.arrived + self.settings.explain_timeout_ms / 1000.0
        started: list[float] = []

        def work(check: Check) -> list[dict[str, Any]]:
            started.append(time.perf_counter())
            try:
                return self.explain_rows(entry, rows, check)
            finally:
                self.metrics.duration.labels(entry.name).observe(time.perf_counter() - started[0])

        explanations = await self.worker.run(
            work, deadline, f"{self.settings.explain_timeout_ms:g} ms", _share(context)
        )
        self.metrics.requests.labels(entry.name, str(entry.version), "ok").inc()
        return {"model": entry.name, "version": entry.version, "explanations": explanations}

    # ------------------------------------------------------------------ worker side
    def explain_rows(self, entry: ServedVersion, rows: list[Any], check: Check) -> list[Any]:
        """Explain every row (on the worker thread); a row the model cannot compute is a 422
        naming it, as in `:predict`."""
        model, adapter = entry.model, entry.kind
        explainer = self.explainer_for(entry)
        features, refused = adapter.featurize_batch(rows)
        if refused:  # as `:predict` refuses it (a review with no known word)
            index = min(refused)
            error = refused[index]
            error.message = f"instances[{index}]: {error.message}"
            raise error
        probabilities = model.predict(features)
        results = []
        for index, (row, row_probabilities) in enumerate(zip(rows, probabilities, strict=True)):
            if not all(math.isfinite(p) for p in row_probabilities):
                error = adapter.uncomputable(row)
                error.message = f"instances[{index}]: {error.message}"
                raise error
            check()
            results.append(explainer.explain(row, check))
        return results

    def _forget_unloaded(self) -> None:
        """Drop the explainers of versions that were unloaded (they hold the runtime)."""
        live = {
            (e.name, e.version): e.served.model
            for e in self.service.registry
            if e.served is not None
        }
        with self._lock:
            for key, (model, _) in list(self._explainers.items()):
                if live.get(key) is not model:
                    del self._explainers[key]

    def explainer_for(self, entry: ServedVersion) -> Explainer:
        """The explainer of this loaded version (built once, on first use)."""
        key = (entry.name, entry.version)
        with self._lock:
            cached = self._explainers.get(key)
            if cached is not None and cached[0] is entry.model:
                return cached[1]
        explainer = build_explainer(entry, self.settings)
        with self._lock:
            self._explainers[key] = (entry.model, explainer)
        return explainer


def build_explainer(entry: ServedVersion, settings: ExplainSettings) -> Explainer:
    """The explainer for a loaded version's input kind and runtime."""
    return make_explainer(entry.card, entry.model, entry.kind, settings)


def make_explainer(
    card: Any, model: Model, adapter: InputAdapter, settings: ExplainSettings
) -> Explainer:
    """The explainer for (card, loaded runtime, adapter): see app.explain's modules."""
    if isinstance(card.input, TabularInput):
        return TabularExplainer(
            card,
            model.predict,
            estimator=model.estimator,
            input_mean=model.input_mean(),
            exact_max_features=settings.explain_exact_max_features,
            permutations=settings.explain_permutations,
        )
    if isinstance(card.input, TableInput | RawTextInput):

        def outputs(rows: list[Any]) -> Any:
            return model.predict(adapter.featurize(rows))

        if isinstance(card.input, TableInput):
            return TableShapley(card, outputs, permutations=settings.explain_permutations)
        return WordShapley(card, outputs, permutations=settings.explain_text_permutations)
    if isinstance(card.input, ImageInput):
        try:
            gradient = model.input_gradient()
        except NoInputGradients as exc:
            raise NotExplainable(str(exc)) from None
        return IntegratedGradients(
            card,
            model.predict,
            gradient,
            featurize=adapter.featurize,
            initial_steps=settings.explain_ig_steps,
            max_steps=settings.explain_ig_max_steps,
        )
    assert isinstance(adapter, TextAdapter)
    return TextShapley(
        card, model.predict, adapter.vectorizer, permutations=settings.explain_text_permutations
    )


def _share(context: RequestContext) -> str:
    """Whose share of the explanation worker a request uses: its API key's, else its client
    address's (set by the explain routes)."""
    return context.caller or context.client
