"""The card's training and evaluation sections: where the data came from, held-out metrics
(classification and regression), calibration and the out-of-domain checks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.schemas.card.common import ArtifactName, Sha256, _Strict


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
        "the inverse of the shared covariance (Mahalanobis score), and for the energy score "
        "the last layer's `kernel` (D, C) and `bias` (C,); listed in artifacts.",
    )
    max_embedding_distance: float | None = Field(
        default=None,
        gt=0,
        description="Images: the largest Mahalanobis distance (to the nearest class mean, "
        "square root) before the image is flagged as unlike the training digits.",
    )
    max_energy: float | None = Field(
        default=None,
        description="Images: the largest energy score, -logsumexp of the network's logits "
        "(Liu et al., 2020), before the image is flagged; the logits come from the "
        "penultimate features and the last layer's `kernel` (D, C) and `bias` (C,) stored in "
        "the embedding statistics file. Meant for a network trained with outlier exposure.",
    )
    held_out_warned: float = Field(
        ge=0, le=1, description="Share of the in-domain held-out inputs that got a warning."
    )
    in_domain_warned: dict[str, float] | None = Field(
        default=None,
        description="Per generated in-domain family (digits the model must read, such as "
        "low-resolution or blurred ones): the share of its inputs warned at calibration.",
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
