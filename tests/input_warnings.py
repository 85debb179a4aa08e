"""Input adapters built from the committed models' cards, and the warnings they give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.adapters import make_adapter
from app.adapters.base import InputAdapter, RowWarnings
from app.schemas.card import ModelCard

MODELS = Path(__file__).resolve().parents[1] / "models"


def adapter(name: str) -> InputAdapter:
    folder = MODELS / name / "2"
    return make_adapter(ModelCard.read(folder), folder)


def warned(adapter: InputAdapter, instances: list[Any]) -> list[RowWarnings]:
    rows = [adapter.to_row(instance) for instance in instances]
    return adapter.warnings(rows, adapter.featurize(rows)) or [()] * len(rows)
