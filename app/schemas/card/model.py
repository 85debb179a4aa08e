"""The card itself (`ModelCard`), its held-out examples, how an imported model came to be,
and the check of the artifacts it pins against their sha256."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from app.schemas.card.common import (
    CARD_FILENAME,
    MODEL_NAME_PATTERN,
    SCHEMA_VERSION,
    ArtifactName,
    Sha256,
    _Strict,
)
from app.schemas.card.evaluation import (
    Calibration,
    HeldOutMetrics,
    OutOfDomainChecks,
    RegressionMetrics,
    TrainingData,
)
from app.schemas.card.inputs import InputSpec
from app.schemas.versions import VersionNumber


class ScanFinding(_Strict):
    """One import a static pickle scan found (module and name)."""

    module: str
    name: str
    safety: str = Field(description="the scanner's verdict: innocuous, suspicious, dangerous")


class ImportRecord(_Strict):
    """How a user's model became this version (`synergy import` / `save_model`)."""

    source_file: str = Field(description="The file name the model came from (no path).")
    source_format: Literal["skops", "pickle", "joblib", "keras", "in-memory"]
    serialization: Literal["skops", "keras"] = Field(
        description="How the served artifact is stored: skops (scikit-learn, loaded with the "
        "server's trust list) or .keras (safe_mode)."
    )
    trusted_pickle: bool = Field(
        default=False, description="The user passed --trust-pickle to read a pickle/joblib file."
    )
    scan: dict[str, Any] | None = Field(
        default=None,
        description="The static scan of a pickle before it was read: scanner, version, "
        "verdict, globals found.",
    )
    estimator: str = Field(description="The estimator's class, e.g. sklearn.pipeline.Pipeline.")
    backend: str | None = Field(default=None, description="Keras backend at import.")
    inferred: list[str] = Field(
        default_factory=list, description="What was inferred from the model and the example."
    )


class CardExample(_Strict):
    """A real held-out instance, as a client would send it, with its true label (or target)."""

    instance: Any
    label: str | None = Field(
        default=None, description="Classifiers: the true label (or the predicted one at import)."
    )
    target: list[float] | None = Field(
        default=None, description="Regressors: the true target value(s), when known."
    )
    prediction: list[float] | None = Field(
        default=None,
        description="Regressors: what the model predicted for this instance at import, one "
        "value per target; replayed at load like `probabilities`.",
    )
    probabilities: list[float] | None = Field(
        default=None,
        description="What the model predicted for this instance right after training, one "
        "probability per label. The server checks at warm-up that the loaded artifact, through "
        "the serving preprocessing, gives the same (no train/serve skew).",
    )


# A lower-case identifier (a runtime's key), not a list: the runtimes table decides which exist.
FRAMEWORK_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


class ModelCard(_Strict):
    """Everything a client or operator needs to know about one model version."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=MODEL_NAME_PATTERN)
    version: VersionNumber
    description: str
    framework: str = Field(
        pattern=FRAMEWORK_PATTERN,
        description="The runtime that serves the artifact: a key of `app.runtimes.RUNTIMES` "
        "(this server: sklearn, keras). The schema does not list the frameworks, so a new "
        "runtime is one entry in that table; a version whose framework no runtime serves is "
        "admitted and fails to load, naming the frameworks the server has.",
    )
    task: Literal["binary-classification", "multiclass-classification", "regression"]
    input: InputSpec
    labels: list[str] = Field(
        min_length=1,
        description="Classifiers: the class labels, in the order of the probabilities. "
        "Regressors: the names of the predicted targets, one output each.",
    )
    model_file: ArtifactName
    artifacts: dict[ArtifactName, Sha256] = Field(
        description="sha256 of every file the model needs, card excluded."
    )
    training_data: TrainingData | None = Field(
        default=None, description="None for an imported model (trained elsewhere)."
    )
    hyperparameters: dict[str, Any]
    metrics: HeldOutMetrics | RegressionMetrics | None = Field(
        default=None, description="None for an imported model given no evaluation data."
    )
    library_versions: dict[str, str]
    seed: int | None = None
    created_at: datetime
    training_seconds: float | None = Field(default=None, ge=0)
    imported: ImportRecord | None = Field(
        default=None, description="Imported models: where the model came from, how it was read."
    )
    calibration: Calibration | None = Field(
        default=None, description="How the probabilities were calibrated (version 2 on)."
    )
    history_file: ArtifactName | None = Field(
        default=None,
        description="Per-epoch training history (JSON: metric name -> one value per epoch), "
        "listed in artifacts; Keras models only.",
    )
    examples: list[CardExample] = Field(
        min_length=1,
        description="Real held-out instances (never trained on) with their true labels: the "
        "API docs' examples and the server's warm-up input.",
    )
    intended_use: str | None = None
    limitations: str | None = None
    errors_file: ArtifactName | None = Field(
        default=None,
        description="Held-out rows the model gets wrong, recorded at training time (JSON, "
        "listed in artifacts; see training.common.misclassified_examples).",
    )
    profile_file: ArtifactName | None = Field(
        default=None,
        description="The reference profile of the training data (input statistics, "
        "predicted-label shares) that drift detection compares live traffic with.",
    )
    out_of_domain: OutOfDomainChecks | None = Field(
        default=None,
        description="Thresholds that flag inputs unlike the training data (warnings).",
    )

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        return labels

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.model_file not in self.artifacts:
            raise ValueError(f"model_file {self.model_file!r} is not listed in artifacts")
        if CARD_FILENAME in self.artifacts:
            raise ValueError("the card cannot list its own hash")
        if self.history_file is not None and self.history_file not in self.artifacts:
            raise ValueError(f"history_file {self.history_file!r} is not listed in artifacts")
        for field, file in self.input.artifact_files().items():
            if file not in self.artifacts:
                raise ValueError(f"{field} {file!r} is not listed in artifacts")
        if self.profile_file is not None and self.profile_file not in self.artifacts:
            raise ValueError(f"profile_file {self.profile_file!r} is not listed in artifacts")
        n = len(self.labels)
        if self.task == "binary-classification" and n != 2:
            raise ValueError("a binary-classification model has exactly 2 labels")
        if self.task == "multiclass-classification" and n < 2:
            raise ValueError("a classification model has at least 2 labels")
        if self.is_classifier:
            self._check_classifier(n)
        else:
            self._check_regressor(n)
        checks = self.out_of_domain
        statistics = checks.embedding_statistics_file if checks is not None else None
        if statistics is not None and statistics not in self.artifacts:
            raise ValueError(f"embedding_statistics_file {statistics!r} is not listed in artifacts")
        if checks is not None:
            self.input.check_out_of_domain(checks)
        if self.errors_file is not None and self.errors_file not in self.artifacts:
            raise ValueError(f"errors_file {self.errors_file!r} is not listed in artifacts")
        return self

    def _check_classifier(self, n: int) -> None:
        if isinstance(self.metrics, RegressionMetrics):
            raise ValueError("a classifier's metrics are classification metrics")
        if self.metrics is not None:
            cm = self.metrics.confusion_matrix
            if len(cm) != n or any(len(row) != n for row in cm):
                raise ValueError(f"confusion_matrix must be {n}x{n}, one row/column per label")
            if sum(map(sum, cm)) != self.metrics.test_size:
                raise ValueError("confusion_matrix does not add up to metrics.test_size")
        if any(e.label is None for e in self.examples):
            raise ValueError("a classifier's examples each have a label")
        unknown = {e.label for e in self.examples if e.label is not None} - set(self.labels)
        if unknown:
            raise ValueError(f"examples use labels not in labels: {sorted(unknown)}")
        if any(e.probabilities is not None and len(e.probabilities) != n for e in self.examples):
            raise ValueError(f"example probabilities must have {n} entries, one per label")

    def _check_regressor(self, n: int) -> None:
        if isinstance(self.metrics, HeldOutMetrics):
            raise ValueError("a regressor's metrics are regression metrics (mae, rmse, r2)")
        if self.calibration is not None:
            raise ValueError("a regressor has no probability calibration")
        for example in self.examples:
            for values in (example.target, example.prediction):
                if values is not None and len(values) != n:
                    raise ValueError(f"example targets/predictions must have {n} entries")
            if example.probabilities is not None:
                raise ValueError("a regressor's examples have no probabilities")

    def classification_metrics(self) -> HeldOutMetrics:
        """The held-out classification metrics; ValueError for a regressor's or a card with
        none (an imported model evaluated on no data)."""
        if not isinstance(self.metrics, HeldOutMetrics):
            raise ValueError(f"model {self.name} has no held-out classification metrics")
        return self.metrics

    @property
    def is_classifier(self) -> bool:
        """Whether the model predicts class probabilities (else target values)."""
        return self.task != "regression"

    def recorded_output(self, example: CardExample) -> list[float] | None:
        """What the model output for `example` when it was saved (probabilities for a
        classifier, predicted values for a regressor): the load-time replay compares it."""
        return example.probabilities if self.is_classifier else example.prediction

    @classmethod
    def read(cls, folder: Path) -> ModelCard:
        """Parse and validate `folder/card.json` (raises OSError or pydantic.ValidationError)."""
        return cls.model_validate_json((folder / CARD_FILENAME).read_bytes())

    def write(self, folder: Path) -> None:
        """Write the card as indented JSON into `folder`."""
        (folder / CARD_FILENAME).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large files do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifacts(card: ModelCard, folder: Path) -> list[str]:
    """Check every file the card lists against its sha256; return the problems found.

    An empty list means every artifact exists, is a regular file inside `folder` (not a link
    out of it), and hashes to what the card says.
    """
    problems: list[str] = []
    root = folder.resolve()
    for filename, expected in sorted(card.artifacts.items()):
        path = folder / filename
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            problems.append(f"{filename}: refusing a file that links outside the model folder")
        elif not path.exists():
            problems.append(f"{filename}: missing")
        elif not path.is_file():  # a FIFO would block the hash forever, a device never end
            problems.append(f"{filename}: not a regular file; refusing it")
        elif (actual := sha256_file(path)) != expected:
            problems.append(
                f"{filename}: sha256 {actual[:12]}... does not match the card's {expected[:12]}..."
            )
    return problems
