"""What one report page is drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.schemas.card import ModelCard


@dataclass(frozen=True)
class PageRequest:
    """Everything one page needs.

    `base_path`: the version's URL prefix as the browser sees it
    (`<root_path>/v1/models/<name>/versions/<v>`); `monitoring_url`/`explain_url`: those
    endpoints where this server has them, else None (the script only calls endpoints that
    exist); `serving`: the live stats
    snapshot (`ServingStats.snapshot()`), shown at once and then refreshed; `nonce`: the CSP
    nonce of the inline script and style.
    """

    card: ModelCard
    folder: Path
    base_path: str
    state: str
    serving: dict[str, Any]
    monitoring_url: str | None
    explain_url: str | None
    nonce: str
    docs_path: str = "/docs"
    # The comparison of a shadow or canary with the serving version, drawn by
    # app.report.comparison ("" when the model has none).
    comparison_html: str = ""
