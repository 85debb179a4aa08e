"""Input warnings as every protocol encodes them: what a kind found unusual about one row.

A leaf of the codecs: the input kinds produce these (`app.kinds`), the protocols and the
payload log encode them, so the type lives below both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InputWarning:
    """Something to know about one prediction's input: a stable `code` for programs, a
    `message` for people (see docs/warnings.md for every code)."""

    code: str
    message: str


# Per row: the warnings of its prediction (an empty tuple, shared, when there are none).
RowWarnings = tuple[InputWarning, ...]
NO_WARNINGS: RowWarnings = ()
