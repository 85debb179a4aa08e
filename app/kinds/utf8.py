"""What the kinds whose input is a string share: the V2 side, a BYTES tensor of UTF-8 text
(one element per instance), and the checks on each element."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.budget import RequestBudget
from app.errors import BadRequest
from app.kinds.base import InputAdapter, named_rows


class Utf8TextAdapter(InputAdapter):
    """A kind whose instance is one string; V2: BYTES [N] (or [N, 1]) of UTF-8 text. The
    subclass gives `tensor_spec` (its wording) and `to_row` (what a checked text becomes)."""

    def tensor_example(self, instance: Any) -> dict[str, Any]:
        return {"datatype": "BYTES", "shape": [1], "data": [instance]}

    def bytes_rows(
        self, elements: np.ndarray, where: str, budget: RequestBudget | None
    ) -> list[Any]:
        texts = [self._text(element, where.format(i)) for i, element in enumerate(elements)]
        return named_rows(self.to_row, texts, where)

    def _text(self, element: Any, where: str) -> str:
        """One element (str from JSON, bytes from binary data or gRPC) as text: 400 when it
        is not UTF-8, empty, or over SYNERGY_MAX_TEXT_CHARS characters."""
        if isinstance(element, bytes):
            try:
                element = element.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(
                    f"{where} is not valid UTF-8 ({exc.reason} at byte {exc.start}); send the "
                    "text encoded as UTF-8"
                ) from None
        text = str(element)
        limit = self.limits.max_text_chars
        if not text:
            raise BadRequest(f"{where} is empty; send at least 1 character")
        if len(text) > limit:
            raise BadRequest(
                f"{where} has {len(text)} characters, over the limit of {limit}; shorten the text"
            )
        return text
