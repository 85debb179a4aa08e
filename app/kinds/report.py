"""The report page's parts that the kinds share: held-out examples as a table of named
features, and texts as quoted excerpts (`app.html` has the page's other fragments)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from app.html import excerpt, table, verdict
from app.schemas.card import CardExample


def feature_examples(names: list[str], examples: list[dict[str, Any]]) -> str:
    """Misclassified examples, one row each: true and predicted label, confidence, then the
    instance's features (an object by name, or a list in the card's order)."""
    rows = []
    for e in examples:
        instance = e["instance"]
        values = (
            [instance.get(n) for n in names]
            if isinstance(instance, dict)
            else list(instance)
            if isinstance(instance, list)
            else []
        )
        confidence = e.get("confidence")
        rows.append(
            [
                escape(str(e["label"])),
                f'<span class="wrong">{escape(str(e["predicted"]))}</span>',
                f"{confidence:.2f}" if isinstance(confidence, int | float) else "",
            ]
            + [f"{v:.4g}" if isinstance(v, int | float) else escape(str(v)) for v in values]
        )
    return table(
        ["True", "Predicted", "Confidence", *names],
        rows,
        numeric=set(range(2, 3 + len(names))),
    )


def json_sample(example: CardExample) -> str:
    """The card's sample instance as JSON, with its label."""
    return (
        f"<p>Sample input from the card (label <strong>{escape(str(example.label))}"
        f"</strong>): <code>{escape(json.dumps(example.instance))}</code></p>"
    )


def text_examples(examples: list[dict[str, Any]]) -> str:
    """Misclassified texts: the verdict, then an excerpt of the text."""
    return "".join(
        f"<p>{verdict(e)}</p><blockquote>{escape(excerpt(str(e['instance'])))}</blockquote>"
        for e in examples
    )


def text_sample(example: CardExample) -> str:
    """The card's sample text (an excerpt), with its label."""
    return (
        f"<p>Sample input from the card (label "
        f"<strong>{escape(str(example.label))}</strong>):</p>"
        f"<blockquote>{escape(excerpt(str(example.instance)))}</blockquote>"
    )
