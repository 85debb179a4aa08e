"""The `promotion` block of a model's `config.json`: when a candidate version (the shadow or
the canary) replaces the version it is compared with, or is rolled back.

    "promotion": {
      "min_feedback_rows": 200,      # rows with feedback before anything is decided
      "max_accuracy_drop": 0.02,     # accuracy the candidate may lose (absolute, 0..1)
      "min_agreement": 0.8,          # shadow only: share of requests both label alike
      "significance_level": 0.05,    # the chance of a false decision, over all looks
      "max_p99_increase": 0.5,       # canary only: p99 latency may grow by this fraction
      "max_error_increase": 0.05,    # regressors: MAE may grow by this fraction
      "value_tolerance": null,       # regressors' shadow: predictions this close agree
      "auto": true                   # false: compare and decide by hand only
    }

How the rules are applied (the statistics, the looks, what a decision changes) is in
`app.monitoring.comparison` and docs/promotion.md.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PromotionRules(BaseModel):
    """When a candidate version is promoted or rolled back (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_feedback_rows: int = Field(
        default=200,
        ge=10,
        le=10_000_000,
        description="Rows with feedback (paired for a shadow, per version for a canary) "
        "before the first decision.",
    )
    max_accuracy_drop: float = Field(
        default=0.02,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Absolute accuracy (0..1) the candidate may lose and still be promoted.",
    )
    min_agreement: float = Field(
        default=0.8,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Shadow: the share of rows both versions label alike, at least.",
    )
    significance_level: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        allow_inf_nan=False,
        description="Chance of a false decision, spent over all looks at the evidence.",
    )
    max_p99_increase: float = Field(
        default=0.5,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Canary: its p99 latency may exceed the baseline's by this fraction.",
    )
    max_error_increase: float = Field(
        default=0.05,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Regressors: the candidate's MAE may exceed the baseline's by this "
        "fraction of the baseline's MAE and still be promoted (the accuracy drop's "
        "counterpart).",
    )
    value_tolerance: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Regressors' shadow: two predictions within this (in the target's unit) "
        "agree, for min_agreement; default: the baseline's held-out MAE from its card (no "
        "agreement rule when the card has none).",
    )
    auto: bool = Field(
        default=True, description="false: the comparison is shown, decisions are made by hand."
    )
