"""The string kinds (text, raw-text) share their V2 side (`app.kinds.utf8`): a BYTES tensor of
UTF-8 text, one element per instance, each checked the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.errors import BadRequest
from app.kinds import InputLimits, make_adapter
from app.kinds.utf8 import Utf8TextAdapter
from app.schemas.card import ModelCard


def _adapter(kind: dict[str, Any], folder: Path) -> Any:
    card = ModelCard.model_validate(
        {
            "name": "reviews",
            "version": 1,
            "description": "a toy",
            "task": "binary-classification",
            "hyperparameters": {},
            "framework": "sklearn",
            "input": kind,
            "labels": ["negative", "positive"],
            "model_file": "model.joblib",
            "artifacts": {"model.joblib": "0" * 64, "vocab.txt": "0" * 64},
            "library_versions": {"scikit-learn": "0.1"},
            "created_at": "2026-01-01T00:00:00Z",
            "examples": [{"instance": "good", "label": "positive"}],
        }
    )
    return make_adapter(card, folder, InputLimits(max_text_chars=10), load=False)


KINDS = [
    {"kind": "raw-text"},
    {"kind": "text", "vocabulary_file": "vocab.txt", "sequence_length": 8, "ngram_max": 2},
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k["kind"])
def test_each_string_kind_reads_and_checks_bytes_elements_alike(
    kind: dict[str, Any], tmp_path: Path
) -> None:
    adapter = _adapter(kind, tmp_path)
    assert isinstance(adapter, Utf8TextAdapter)
    assert adapter.tensor_example("good") == {"datatype": "BYTES", "shape": [1], "data": ["good"]}
    where = "input text[{}]"
    rows = adapter.bytes_rows(np.array([b"great", "fine"], dtype=object), where, None)
    assert [str(getattr(row, "text", row)) for row in rows] == ["great", "fine"]
    for element, message in (
        (b"\xff", r"input text\[0\] is not valid UTF-8 \(invalid start byte at byte 0\)"),
        ("", r"input text\[0\] is empty; send at least 1 character"),
        ("x" * 11, r"input text\[0\] has 11 characters, over the limit of 10; shorten the text"),
    ):
        with pytest.raises(BadRequest, match=message):
            adapter.bytes_rows(np.array([element], dtype=object), where, None)
