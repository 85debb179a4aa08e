"""The model card: one schema, written by `training/` and validated by `app/`.

A card travels with every artifact folder (`models/<name>/<version>/card.json`). It says what
the model is, what it expects as input, how it was trained and how well it did on held-out
data, and pins the sha256 of every file in the folder so the server refuses tampered or
truncated artifacts.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.schemas.versions import VersionNumber

CARD_FILENAME = "card.json"
SCHEMA_VERSION: Final = 1

# Model names end up in URLs and folder names: keep them to a safe, boring alphabet.
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
# Artifact file names are plain names inside the version folder: no separators, no "..".
ARTIFACT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

ArtifactName = Annotated[str, Field(pattern=ARTIFACT_NAME_PATTERN)]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FeatureType = Literal["number", "string", "boolean"]


class _InputSpec(_Strict):
    """What every input section of a card answers for the card's own checks (the rest of
    what an input kind means lives in `app.kinds`)."""

    def artifact_files(self) -> dict[str, str]:
        """The files beside the card this input needs, by field name (each must be listed
        in the card's artifacts)."""
        return {}

    def check_out_of_domain(self, checks: OutOfDomainChecks) -> None:
        """Raise ValueError where the card's out_of_domain section does not fit this input."""


class Feature(_Strict):
    """One named input feature of a tabular model.

    `dtype` says what a client sends for it: a number, a category (a string; `categories`
    lists those seen in the example data, for docs and drift) or a boolean. `missing`: the
    model accepts a missing value (JSON null) for it (an imputer in its pipeline).
    """

    name: str
    unit: str | None = None
    description: str | None = None
    dtype: FeatureType = "number"
    categories: list[str] | None = Field(
        default=None, description="String features: the categories seen in the example data."
    )
    missing: bool = Field(
        default=False, description="Whether the model accepts a missing value (null)."
    )


class TabularInput(_InputSpec):
    """Rows of numbers; the service accepts named features or a plain list in this order."""

    kind: Literal["tabular"] = "tabular"
    features: list[Feature] = Field(min_length=1)

    @property
    def n_features(self) -> int:
        """Number of features one instance must have."""
        return len(self.features)

    def check_out_of_domain(self, checks: OutOfDomainChecks) -> None:
        count = self.n_features
        if len(checks.feature_low or ()) != count or len(checks.feature_high or ()) != count:
            raise ValueError(f"out_of_domain feature ranges must have {count} entries")

    @property
    def mixed(self) -> bool:
        """Whether any feature is not a plain number (a string, a boolean, or may be missing):
        such rows go to the model as a table of Python objects, not a float32 matrix."""
        return any(f.dtype != "number" or f.missing for f in self.features)


class TableInput(_InputSpec):
    """A named table: each instance an object of named features of mixed types (numbers,
    category strings, booleans, missing values where the model takes them), given to the
    model as a one-row-per-instance DataFrame with the card's column names and types (a
    scikit-learn ColumnTransformer pipeline fitted on a DataFrame)."""

    kind: Literal["table"] = "table"
    features: list[Feature] = Field(min_length=1)

    @property
    def n_features(self) -> int:
        """Number of features one instance must have."""
        return len(self.features)


class ImageInput(_InputSpec):
    """Grey-level images, white ink on black, values 0-255 (the MNIST convention)."""

    kind: Literal["image"] = "image"
    height: int = Field(ge=1)
    width: int = Field(ge=1)
    channels: Literal[1] = 1
    max_value: float = 255.0
    description: str | None = None


class TextInput(_InputSpec):
    """Raw text, tokenised outside the model graph with the saved vocabulary."""

    kind: Literal["text"] = "text"
    vocabulary_file: ArtifactName
    sequence_length: int = Field(ge=1)
    ngram_max: int = Field(ge=1, le=2)
    lowercase: bool = True
    language: str | None = Field(
        default=None, description="The language of the training texts, e.g. English."
    )
    vocabulary_size: int | None = Field(
        default=None,
        ge=1,
        description="Entries in the vocabulary file (words and word pairs); a text with none "
        "of its words in it is refused.",
    )
    description: str | None = None

    def artifact_files(self) -> dict[str, str]:
        return {"vocabulary_file": self.vocabulary_file}


class RawTextInput(_InputSpec):
    """Raw text handed to the model as strings: the model tokenises it itself (a scikit-learn
    pipeline starting with a TfidfVectorizer, a Keras model with a TextVectorization layer)."""

    kind: Literal["raw-text"] = "raw-text"
    language: str | None = None
    description: str | None = None


InputSpec = Annotated[
    TabularInput | TableInput | ImageInput | TextInput | RawTextInput,
    Field(discriminator="kind"),
]


class TrainingData(_Strict):
    """Where the training data came from and how it was split."""

    source: str
    sha256: Sha256 = Field(
        description="sha256 of the data actually used (file or generated arrays)"
    )
    train_size: int = Field(ge=1)
    validation_size: int = Field(ge=0)
    test_size: int = Field(ge=1)
    notes: str | None = None


class HeldOutMetrics(_Strict):
    """Held-out evaluation metrics, computed once at training time."""

    evaluated_on: Literal["test", "validation"] = Field(
        description="Which held-out split these numbers come from; it was never used for fitting "
        "or early stopping."
    )
    test_size: int = Field(ge=1)
    accuracy: float = Field(ge=0, le=1)
    precision_macro: float = Field(ge=0, le=1)
    recall_macro: float = Field(ge=0, le=1)
    f1_macro: float = Field(ge=0, le=1)
    roc_auc: float | None = Field(default=None, ge=0, le=1, description="Binary models only.")
    confusion_matrix: list[list[int]] = Field(
        description="Rows are true labels, columns predicted labels, in the order of `labels`."
    )
    roc_curve: list[Annotated[list[float], Field(min_length=2, max_length=2)]] | None = Field(
        default=None,
        description="Binary models: [false positive rate, true positive rate] points of the ROC "
        "curve, from (0, 0) to (1, 1), thinned to about 100.",
    )


class RegressionMetrics(_Strict):
    """Held-out metrics of a regressor, averaged over its targets (uniform average)."""

    kind: Literal["regression"] = "regression"
    evaluated_on: Literal["test", "validation"] = "test"
    test_size: int = Field(ge=1)
    mae: float = Field(ge=0, description="Mean absolute error, in the target's unit.")
    rmse: float = Field(ge=0, description="Root mean squared error, in the target's unit.")
    r2: float = Field(description="Coefficient of determination (1 is perfect; may be < 0).")
    per_target: dict[str, dict[str, float]] | None = Field(
        default=None, description="Multi-output: mae, rmse and r2 per target."
    )


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


class ReliabilityBin(_Strict):
    """One bin of a reliability table: predictions whose top probability is in (low, high]."""

    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)
    count: int = Field(ge=0)
    mean_confidence: float = Field(ge=0, le=1)
    accuracy: float = Field(ge=0, le=1)


class Calibration(_Strict):
    """How the served probabilities were calibrated, and how well they match reality."""

    method: str = Field(
        description="e.g. temperature scaling (Keras; the logits are divided by T inside the "
        "saved model) or sigmoid/isotonic calibration (scikit-learn's CalibratedClassifierCV)"
    )
    fitted_on: str = Field(description="the data the calibration was fitted on")
    temperature: float | None = Field(default=None, gt=0, description="Temperature scaling only.")
    evaluated_on: Literal["test", "validation"] = Field(
        description="The held-out split of `metrics`, where the ECE figures come from."
    )
    bins: int = Field(ge=1, description="Equal-width bins over the top probability.")
    ece_before: float = Field(ge=0, le=1, description="Expected calibration error, uncalibrated.")
    ece_after: float = Field(ge=0, le=1, description="Expected calibration error, as served.")
    accuracy_before: float = Field(ge=0, le=1)
    reliability: list[ReliabilityBin] = Field(
        description="The served model's reliability table on the held-out split."
    )


class OutOfDomainChecks(_Strict):
    """When a prediction's input is unlike the training data: the thresholds behind the
    `warnings` of every prediction (see docs/warnings.md), chosen on data at calibration time
    (`python -m training.ood`), with how often they fired there."""

    method: str = Field(description="What is measured and how the thresholds were chosen.")
    fitted_on: str = Field(description="The data the thresholds were chosen on.")
    feature_low: list[float] | None = Field(
        default=None,
        description="Tabular: per feature, in the card's order, the lowest value taken as "
        "in the training range (the training minimum less a margin).",
    )
    feature_high: list[float] | None = Field(
        default=None, description="Tabular: per feature, the highest value (maximum + margin)."
    )
    max_unknown_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Text: the largest share of a text's words outside the vocabulary "
        "(another language, another topic) before it is flagged.",
    )
    min_known_words: int | None = Field(
        default=None,
        ge=0,
        description="Text: fewer known words than this and the text is too short to read "
        "with confidence.",
    )
    embedding_statistics_file: ArtifactName | None = Field(
        default=None,
        description="Keras image models: an .npz (no pickles) of the penultimate-layer "
        "statistics of the training images: `means` (C, D) per class and `precision` (D, D), "
        "the inverse of the shared covariance (Mahalanobis score; listed in artifacts).",
    )
    max_embedding_distance: float | None = Field(
        default=None,
        gt=0,
        description="Images: the largest Mahalanobis distance (to the nearest class mean, "
        "square root) before the image is flagged as unlike the training digits.",
    )
    held_out_warned: float = Field(
        ge=0, le=1, description="Share of the in-domain held-out inputs that got a warning."
    )
    out_of_domain_warned: dict[str, float] = Field(
        description="Per generated out-of-domain family: the share of its inputs warned."
    )
    probability_floor: float = Field(
        default=1e-4,
        ge=0,
        lt=0.5,
        description="Every served probability is at least this (and at most 1 - this times "
        "the number of other classes): no held-out set of this size supports more certainty.",
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


class ModelCard(_Strict):
    """Everything a client or operator needs to know about one model version."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=MODEL_NAME_PATTERN)
    version: VersionNumber
    description: str
    framework: Literal["sklearn", "keras"]
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
