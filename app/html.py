"""HTML fragments of the report pages, shared by `app.report` and the input kinds' own
sections (`app.kinds`, which draw their inputs and examples): every argument that is text is
escaped here unless the name says it is already HTML."""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

import numpy as np
from PIL import Image

# The longest excerpt of a text shown on a page (a review is cut after this many characters).
EXCERPT_CHARS = 360


def missing(text: str) -> str:
    """A note that something is not recorded or not available."""
    return f'<p class="missing">{escape(text)}</p>'


def tile(label: str, value: str, *, words: bool = False) -> str:
    """A figure in a box. `words`: the value is words ("multiclass classification"), set
    smaller so the longest word fits a tile: tiles never break a word, only between words."""
    kind = "value words" if words else "value"
    return (
        f'<div class="tile"><span class="label">{escape(label)}</span>'
        f'<span class="{kind}">{escape(value)}</span></div>'
    )


def table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """A table of already-escaped cells; `numeric` columns align right."""
    numeric = numeric or set()
    head = "".join(
        f'<th scope="col"{" class=num" if i in numeric else ""}>{escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def figure(svg: str, caption: str) -> str:
    """A chart (already SVG) with its caption."""
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def excerpt(text: str) -> str:
    """The start of a text, at most EXCERPT_CHARS characters, "..." when cut (not escaped)."""
    return text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")


def verdict(example: dict[str, Any]) -> str:
    """The "true X, predicted Y (confidence)" line of a misclassified held-out example."""
    confidence = example.get("confidence")
    conf = f" ({confidence:.0%})" if isinstance(confidence, int | float) else ""
    return (
        f'<span class="verdict">true <strong>{escape(str(example["label"]))}</strong>, '
        f'predicted <span class="wrong">{escape(str(example["predicted"]))}</span>{conf}</span>'
    )


def digit_png(instance: Any, scale: int = 4) -> str | None:
    """A grey-level image (rows of 0-255 values, or 0-1) as a base64 PNG, enlarged `scale`
    times with square pixels; None when the instance is not a 2-D grid of numbers."""
    try:
        pixels = np.asarray(instance, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2 or pixels.size == 0 or not np.isfinite(pixels).all():
        return None
    if pixels.max() <= 1.0:
        pixels = pixels * 255.0
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
