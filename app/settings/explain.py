"""The settings group of explanations (`:explain`, app.explain)."""

from __future__ import annotations

from pydantic import Field

from app.settings.groups import _Group


class ExplainSettings(_Group):
    """Explanations (`:explain`, see app.explain)."""

    # Explanations (`:explain`, see app.explain): one worker thread of their own, so they never
    # take the predictions' batchers; each explanation costs hundreds of model rows.
    explain_max_instances: int = Field(
        default=16, ge=1, description="Instances per explain request; 413 above."
    )
    explain_timeout_ms: float = Field(
        default=30_000, gt=0, description="Deadline of an explain request (from arrival) -> 504."
    )
    explain_max_queue: int = Field(
        default=4, ge=1, description="Explain requests waiting for the worker; 503 above."
    )
    explain_max_per_caller: int = Field(
        default=2,
        ge=1,
        description="Explain requests one caller (API key, or client address without keys) may "
        "have waiting or running; 503 above, so one caller cannot take the worker from others.",
    )
    explain_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="OS nice value of the explanation thread, so predictions win the CPU.",
    )
    explain_max_yield_ms: float = Field(
        default=20,
        ge=0,
        description="Between chunks of an explanation, how long it waits while predictions "
        "are queued or computing (0 = never).",
    )
    explain_exact_max_features: int = Field(
        default=10, ge=1, le=14, description="Exact Shapley values up to this many features."
    )
    explain_permutations: int = Field(
        default=32, ge=1, description="Tabular sampled Shapley: permutations (each + reverse)."
    )
    explain_text_permutations: int = Field(
        default=8, ge=1, description="Text sampled Shapley: permutations (each + reverse)."
    )
    explain_ig_steps: int = Field(
        default=32, ge=2, description="Integrated gradients: first trapezoid grid."
    )
    explain_ig_max_steps: int = Field(
        default=1024, ge=2, description="Integrated gradients: finest grid when refining."
    )
