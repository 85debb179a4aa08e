"""Compare two OpenAPI documents, ignoring what carries no meaning.

Dict key order never matters; list order matters except under the keys in `UNORDERED`
(parameters, required fields, enums, unions, tags, security), where a reordering describes
the same API. Floats (the probabilities in examples, computed by the models on this CPU) are
equal within 1e-4 relative, so a different CPU's round-off is no change.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

UNORDERED = frozenset(
    {"parameters", "required", "enum", "anyOf", "oneOf", "allOf", "tags", "security"}
)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Each place where `after` says something `before` does not, as `path: what`."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(set(before) | set(after)):
            where = f"{path}/{key}"
            if key not in after:
                found.append(f"{where}: removed")
            elif key not in before:
                found.append(f"{where}: added")
            else:
                found.extend(differences(before[key], after[key], where))
        return found
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return [f"{path}: {len(before)} items became {len(after)}"]
        if path.rsplit("/", 1)[-1] in UNORDERED:
            before = sorted(before, key=_canonical)
            after = sorted(after, key=_canonical)
        return [
            d
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for d in differences(b, a, f"{path}/{i}")
        ]
    if isinstance(before, float) or isinstance(after, float):
        both_numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (before, after)
        )
        if both_numbers and math.isclose(before, after, rel_tol=1e-4, abs_tol=1e-9):
            return []
    if type(before) is not type(after) or before != after:
        return [f"{path}: {before!r:.80} became {after!r:.80}"]
    return []


def write_snapshot(document: dict[str, Any], target: Path) -> None:
    """Keys sorted, one line per key, lists of numbers on one line (MNIST examples are long)."""
    text = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False)
    text = re.sub(
        r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
        lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
        text,
    )
    target.write_text(text + "\n", encoding="utf-8")


def main() -> None:
    """Regenerate the snapshot after a deliberate API change: `python -m tests.api.openapi_diff`."""
    from tests.conftest import COMMITTED_MODELS, running_app

    with running_app(COMMITTED_MODELS) as client:
        document = client.get("/openapi.json").json()
    write_snapshot(document, Path(__file__).parent / "fixtures" / "openapi-before-21.json")


if __name__ == "__main__":
    main()
