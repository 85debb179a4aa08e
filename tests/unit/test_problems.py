"""The one wording of pydantic's validation errors (`app.schemas.problems`), row by row."""

from __future__ import annotations

from typing import Any

import pytest

from app.schemas import problems


@pytest.mark.parametrize(
    ("parts", "skip", "text"),
    [
        ((), (), "body"),
        (("instances", 0, 3, 5), (), "instances[0][3][5]"),
        (("inputs", 0, "shape"), (), "inputs[0].shape"),
        (("body", "labels", 1), {"body"}, "labels[1]"),
        (("body",), {"body"}, "body"),
        (("path", "version"), {"body"}, "path.version"),
    ],
)
def test_a_location_reads_as_a_path_into_the_json(
    parts: tuple[Any, ...], skip: set[str], text: str
) -> None:
    assert problems.location(parts, skip=skip) == text


@pytest.mark.parametrize(
    ("msg", "text"),
    [
        ("Value error, must be positive", "must be positive"),
        (
            "Input should be an instance of <class 'app.schemas.card.ModelCard'>",
            "Input should be an instance of ModelCard",
        ),
        ("Field required", "Field required"),
    ],
)
def test_a_message_loses_pydantics_prefixes_and_class_reprs(msg: str, text: str) -> None:
    assert problems.message({"msg": msg}) == text


def test_the_first_problems_are_listed_and_the_rest_counted() -> None:
    errors = [{"loc": ("a", i), "msg": f"bad {i}", "input": i} for i in range(5)]
    assert problems.describe(errors[:1]) == "a[0]: bad 0"
    assert problems.describe(errors) == "a[0]: bad 0; a[1]: bad 1; a[2]: bad 2 (and 2 more)"
    shown = problems.describe(errors[:2], detail=lambda e: f" (got {e['input']})")
    assert shown == "a[0]: bad 0 (got 0); a[1]: bad 1 (got 1)"
    assert problems.describe(errors, limit=5, where=lambda e: "x") == "; ".join(
        f"x: bad {i}" for i in range(5)
    )
