"""The per-model report page (HTML): card, held-out quality, calibration, training, mistakes,
live health and explanations. No HTTP here: `app.api.report` is the thin route module."""

from app.report.page import PageRequest, login_page, render

__all__ = ["PageRequest", "login_page", "render"]
