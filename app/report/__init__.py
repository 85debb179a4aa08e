"""The per-model report page (HTML): card, held-out quality, calibration, training, mistakes,
live health and explanations. No HTTP here: `app.api.report` is the thin route module."""

from app.report.page import login_page, render
from app.report.request import PageRequest

__all__ = ["PageRequest", "login_page", "render"]
