"""What the server answers, as frozen dataclasses.

Parsing keeps the fields documented in the server's OpenAPI schemas and ignores any it adds
later, so a newer server does not break an older client. Every model's full card stays
available as `ModelCard.raw`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload


def _mapping(value: Any) -> Mapping[str, Any]:
    return dict(value or {})


@dataclass(frozen=True, slots=True)
class InputWarning:
    """The server's note that an input is unlike the model's training data.

    Attributes:
        code: stable code (feature_out_of_range, unknown_words, too_few_words,
            unlike_training_images, several_digits; see the server's docs/warnings.md).
        message: what was found, in words.
    """

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Prediction:
    """One instance's prediction.

    Attributes:
        label: the most probable class.
        probabilities: the probability of every class label (in the card's label order);
            they sum to 1.
        warnings: why the answer may not be trusted (empty when there is nothing to say).
    """

    label: str
    probabilities: Mapping[str, float]
    warnings: tuple[InputWarning, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prediction:
        probabilities = {str(k): float(v) for k, v in data["probabilities"].items()}
        warnings = tuple(
            InputWarning(str(w["code"]), str(w["message"])) for w in data.get("warnings") or ()
        )
        return cls(label=str(data["label"]), probabilities=probabilities, warnings=warnings)


@dataclass(frozen=True, slots=True)
class Predictions(Sequence[Prediction]):
    """A predict answer: one `Prediction` per instance, in the order they were sent.

    Indexing, iteration and `len` go to `predictions`.
    """

    model: str
    version: int
    predictions: tuple[Prediction, ...]
    request_id: str | None = None  # the X-Request-ID to quote in feedback

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Predictions:
        return cls(
            model=str(data["model"]),
            version=int(data["version"]),
            predictions=tuple(Prediction.from_json(p) for p in data["predictions"]),
        )

    @overload
    def __getitem__(self, index: int) -> Prediction: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Prediction, ...]: ...
    def __getitem__(self, index: int | slice) -> Prediction | tuple[Prediction, ...]:
        return self.predictions[index]

    def __len__(self) -> int:
        return len(self.predictions)

    def __iter__(self) -> Iterator[Prediction]:
        return iter(self.predictions)

    @property
    def labels(self) -> list[str]:
        """The label of each instance, in order."""
        return [p.label for p in self.predictions]


@dataclass(frozen=True, slots=True)
class ModelVersionStatus:
    """Where one model version stands: state is loading | ready | failed | stopped."""

    name: str
    version: int
    state: str
    reason: str | None = None
    device: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelVersionStatus:
        return cls(
            name=str(data["name"]),
            version=int(data["version"]),
            state=str(data["state"]),
            reason=data.get("reason"),
            device=data.get("device"),
        )


@dataclass(frozen=True, slots=True)
class Readiness:
    """`GET /health/ready` (or `/health/ready/{model}`): `ready` is the 200.

    status: ready | loading | not ready | shutting down; for one model also degraded (it
    serves, but a version failed) and failed. `failed` lists the versions that failed to load,
    with their reasons, also when `ready` (a failed new version does not make a replica 503).
    """

    ready: bool
    status: str
    models: tuple[ModelVersionStatus, ...]
    failed: tuple[ModelVersionStatus, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, ready: bool) -> Readiness:
        versions = data["models"] if "models" in data else data["versions"]
        return cls(
            ready=ready,
            status=str(data["status"]),
            models=tuple(ModelVersionStatus.from_json(m) for m in versions),
            failed=tuple(
                ModelVersionStatus.from_json({**f, "state": "failed"})
                for f in data.get("failed", ())
            ),
        )


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One model of `GET /v1/models`. The card fields are None when its card is unreadable."""

    name: str
    latest_version: int | None
    versions: tuple[ModelVersionStatus, ...]
    framework: str | None
    task: str | None
    input_kind: str | None
    labels: tuple[str, ...] | None
    description: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSummary:
        labels = data.get("labels")
        return cls(
            name=str(data["name"]),
            latest_version=data.get("latest_version"),
            versions=tuple(ModelVersionStatus.from_json(v) for v in data["versions"]),
            framework=data.get("framework"),
            task=data.get("task"),
            input_kind=data.get("input_kind"),
            labels=tuple(labels) if labels is not None else None,
            description=data.get("description"),
        )


@dataclass(frozen=True, slots=True)
class HeldOutMetrics:
    """Evaluation at training time on data never used for fitting (fractions 0-1).

    confusion_matrix: rows are true labels, columns predicted labels, in the card's label order.
    roc_auc: binary models only.
    """

    evaluated_on: str
    test_size: int
    accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    roc_auc: float | None
    confusion_matrix: tuple[tuple[int, ...], ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeldOutMetrics:
        return cls(
            evaluated_on=str(data["evaluated_on"]),
            test_size=int(data["test_size"]),
            accuracy=float(data["accuracy"]),
            precision_macro=float(data["precision_macro"]),
            recall_macro=float(data["recall_macro"]),
            f1_macro=float(data["f1_macro"]),
            roc_auc=None if data.get("roc_auc") is None else float(data["roc_auc"]),
            confusion_matrix=tuple(tuple(int(n) for n in row) for row in data["confusion_matrix"]),
        )


@dataclass(frozen=True, slots=True)
class ServingInfo:
    """How the server runs a model version (batching in rows and milliseconds)."""

    state: str
    reason: str | None
    device: str | None
    load_seconds: float | None
    max_batch_size: int
    max_batch_wait_ms: float
    max_queue_rows: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServingInfo:
        return cls(
            state=str(data["state"]),
            reason=data.get("reason"),
            device=data.get("device"),
            load_seconds=data.get("load_seconds"),
            max_batch_size=int(data["max_batch_size"]),
            max_batch_wait_ms=float(data["max_batch_wait_ms"]),
            max_queue_rows=int(data["max_queue_rows"]),
        )


@dataclass(frozen=True, slots=True)
class CardExample:
    """A real held-out instance, as `predict` takes it, with its true label."""

    instance: Any
    label: str


@dataclass(frozen=True, slots=True)
class ModelCard:
    """`GET /v1/models/{name}[/versions/{v}]`: the model card and how it is served.

    input: the input spec (`kind` is tabular | image | text, plus its fields).
    raw: the whole card as the server sent it (training data, hyperparameters, hashes, ...).
    """

    name: str
    version: int
    description: str
    framework: str
    task: str
    labels: tuple[str, ...]
    input: Mapping[str, Any]
    metrics: HeldOutMetrics
    examples: tuple[CardExample, ...]
    serving: ServingInfo
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelCard:
        card = data["card"]
        return cls(
            name=str(card["name"]),
            version=int(card["version"]),
            description=str(card["description"]),
            framework=str(card["framework"]),
            task=str(card["task"]),
            labels=tuple(str(label) for label in card["labels"]),
            input=_mapping(card["input"]),
            metrics=HeldOutMetrics.from_json(card["metrics"]),
            examples=tuple(
                CardExample(instance=e["instance"], label=str(e["label"]))
                for e in card.get("examples", ())
            ),
            serving=ServingInfo.from_json(data["serving"]),
            raw=_mapping(card),
        )


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Latency percentiles in milliseconds over the last `window` successful requests
    (None before the first one)."""

    p50: float | None
    p90: float | None
    p99: float | None
    window: int


@dataclass(frozen=True, slots=True)
class LabelShare:
    """How often a label was predicted: count, and share of all predictions (0-1)."""

    count: int
    share: float


@dataclass(frozen=True, slots=True)
class ServingStats:
    """Live numbers since the server started."""

    requests: int
    errors: int
    errors_by_status: Mapping[str, int]
    latency_ms: LatencyStats
    predicted_labels: Mapping[str, LabelShare]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServingStats:
        latency = data["latency_ms"]
        return cls(
            requests=int(data["requests"]),
            errors=int(data["errors"]),
            errors_by_status={str(k): int(v) for k, v in data["errors_by_status"].items()},
            latency_ms=LatencyStats(
                p50=latency.get("p50"),
                p90=latency.get("p90"),
                p99=latency.get("p99"),
                window=int(latency["window"]),
            ),
            predicted_labels={
                str(k): LabelShare(count=int(v["count"]), share=float(v["share"]))
                for k, v in data["predicted_labels"].items()
            },
        )


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """`GET /v1/models/{name}[/versions/{v}]/metrics`: held-out and live numbers."""

    model: str
    version: int
    held_out: HeldOutMetrics
    serving: ServingStats

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelMetrics:
        return cls(
            model=str(data["model"]),
            version=int(data["version"]),
            held_out=HeldOutMetrics.from_json(data["held_out"]),
            serving=ServingStats.from_json(data["serving"]),
        )
