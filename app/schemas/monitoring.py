"""Request and response models of the feedback and monitoring endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, StrictStr

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"


TrueValue = Annotated[float, Strict(), AllowInfNan(False)]


class FeedbackRequest(BaseModel):
    """The true labels of one earlier prediction."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"request_id": "3f2a9c1d5e7b4a60", "labels": ["setosa"]}]},
    )

    request_id: str = Field(
        pattern=REQUEST_ID_PATTERN,
        description="The X-Request-ID header of the prediction's response (or the one the "
        "client sent with it).",
    )
    labels: list[
        Annotated[StrictStr, Field(max_length=128)]
        | TrueValue
        | Annotated[list[TrueValue], Field(min_length=1, max_length=64)]
        | None
    ] = Field(
        min_length=1,
        max_length=100_000,
        description="One truth or null per predicted instance, in the order of the instances: "
        "a classifier's true label (as in the card's labels); a regressor's true value (a "
        "number, or a list of one number per target).",
    )


class FeedbackResponse(BaseModel):
    """What was stored."""

    model: str
    version: int
    request_id: str
    rows: int = Field(description="Instances of that prediction.")
    labelled: int = Field(description="Of those, rows that now have a true label.")


class AccuracyFigures(BaseModel):
    """Live accuracy over rows with feedback."""

    rows: int
    correct: int
    accuracy: float | None = Field(description="correct / rows; null without feedback.")
    interval_95: list[float] = Field(description="Wilson score interval at 95%.")
    below_held_out: bool = Field(
        description="The interval's upper bound is below the card's held-out accuracy."
    )
    window_rows: int | None = Field(
        default=None, description="Recent window: the newest rows with feedback it covers."
    )


class LiveAccuracy(BaseModel):
    all_time: AccuracyFigures
    recent: AccuracyFigures


class ConfusionMatrix(BaseModel):
    labels: list[str]
    matrix: list[list[int]] = Field(description="Rows: true labels; columns: predicted.")


class DriftStatistic(BaseModel):
    statistic: str = Field(description="A feature, an image/text statistic or predicted_label.")
    kind: str = Field(description="continuous | categorical")
    test: str = Field(description="ks | chi-squared")
    score: float = Field(description="PSI against the training profile.")
    p_value: float
    window_rows: int
    flag: bool


class Drift(BaseModel):
    window_rows: int = Field(description="Newest predicted rows compared (the setting).")
    rows: int = Field(description="Rows in the window now.")
    distinct_rows: int = Field(
        description="Of those, distinct inputs: the rows the tests count (identical inputs "
        "count once)."
    )
    profile: bool = Field(description="Whether the version has a reference profile.")
    flagged: bool
    statistics: list[DriftStatistic]
    note: str | None = None


class LiveRegression(BaseModel):
    """A regressor's live error over the newest rows with feedback (averaged over targets)."""

    rows: int
    mae: float | None
    rmse: float | None
    r2: float | None = Field(description="Null with fewer than 2 rows or constant truths.")
    window_rows: int
    held_out: dict[str, float] | None = Field(
        description="The card's held-out mae, rmse and r2, to compare with."
    )


class VersionMonitoring(BaseModel):
    version: int
    rows_predicted: int
    rows_with_feedback: int
    held_out_accuracy: float | None = Field(description="None: no held-out evaluation.")
    accuracy: LiveAccuracy | None = Field(description="Classifiers only.")
    confusion_matrix: ConfusionMatrix | None = Field(description="Classifiers only.")
    regression: LiveRegression | None = Field(default=None, description="Regressors only.")
    drift: Drift


class MonitoringResponse(BaseModel):
    """Live accuracy against the card and input drift, per version."""

    model: str
    caller: str = Field(
        description='"all": every caller\'s rows; "this key": the rows '
        "predicted with the calling API key (?rows=mine)."
    )
    versions: list[VersionMonitoring]
