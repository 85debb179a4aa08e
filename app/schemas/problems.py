"""Pydantic's validation errors in the project's words: the one place that turns an error's
location and message into text for a client (V1 bodies, V2 bodies, FastAPI's parameters,
the repository API's bodies).

A location reads as a path into the JSON (`instances[0][3]`, `inputs[0].shape`); a message
loses pydantic's "Value error, " prefix and class reprs (`<class 'x.Y'>` -> `Y`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

_CLASS_REPR = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def location(parts: Sequence[int | str], *, skip: Collection[int | str] = ()) -> str:
    """`("inputs", 0, "shape")` -> `inputs[0].shape` (`body` for the whole body); parts in
    `skip` (FastAPI's `body`, a union's member tag) are left out."""
    text = ""
    for part in parts:
        if part in skip and not isinstance(part, int):
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def message(error: Mapping[str, Any]) -> str:
    """One error's message without pydantic's prefixes and class reprs."""
    text = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return _CLASS_REPR.sub(r"\1", text)


def describe(
    errors: Sequence[Mapping[str, Any]],
    *,
    limit: int = 3,
    where: Callable[[Mapping[str, Any]], str] | None = None,
    detail: Callable[[Mapping[str, Any]], str] | None = None,
) -> str:
    """The first `limit` errors as `where: message` joined by "; ", then "(and N more)".
    `where` locates an error (default: `location` of its `loc`); `detail` adds to a message
    (e.g. the value that was sent)."""
    locate = where or (lambda error: location(error.get("loc", ())))
    problems = [
        f"{locate(error)}: {message(error)}" + (detail(error) if detail else "")
        for error in errors[:limit]
    ]
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(problems) + more
