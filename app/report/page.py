"""The report page: one self-contained HTML document per model version.

The parts that only depend on the card and its artifacts (tables, charts) are built once per
version and cached; the live part is filled by the page's script from the JSON endpoints
(`/metrics`, and `/monitoring`, `:explain` where this server has them), so the page refreshes
without a reload and works the same whether those features are there or not.
"""

from __future__ import annotations

import json
import threading
from html import escape
from pathlib import Path
from typing import Any

from app.report.assets import CSS, JS
from app.report.glance import glance
from app.report.quality import calibration, quality
from app.report.request import PageRequest
from app.report.sections import errors, explanation, live, training
from app.schemas.card import ModelCard

REFRESH_S = 5
_CACHE_SIZE = 64
_cache: dict[tuple[str, int, str, str], str] = {}
_cache_lock = threading.Lock()


def render(page: PageRequest) -> str:
    """The whole HTML document (blocking: charts are drawn on first use; call off the loop)."""
    card = page.card
    static = _static_sections(card, page.folder)
    name, version = escape(card.name), card.version
    config = {
        "name": card.name,
        "version": card.version,
        "labels": card.labels,
        "refresh_s": REFRESH_S,
        "initial_serving": page.serving,
        "sample": card.examples[0].instance if card.examples else None,
        "urls": {
            "metrics": f"{page.base_path}/metrics",
            "monitoring": page.monitoring_url,
            "explain": page.explain_url,
        },
    }
    config_json = script_json(config)
    nonce = escape(page.nonce)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{name} version {version} - model report</title>
<style nonce="{nonce}">{CSS}</style>
</head>
<body>
<header>
<h1>{name} <span class="version">version {version}</span></h1>
<p class="lead">{escape(card.description)}</p>
<p class="status">Served state: <strong>{escape(page.state)}</strong>.
JSON: <a href="{escape(page.base_path)}">card</a>,
<a href="{escape(page.base_path)}/metrics">metrics</a>;
<a href="{escape(page.docs_path)}">API docs</a>.</p>
<nav aria-label="Sections"><ul>
<li><a href="#glance">At a glance</a></li><li><a href="#quality">Held-out quality</a></li>
<li><a href="#calibration">Calibration</a></li><li><a href="#training">Training</a></li>
<li><a href="#errors">Mistakes</a></li><li><a href="#live">Live</a></li>
<li><a href="#explanation">Explanation</a></li></ul></nav>
</header>
<main>
{static}
{live(page)}
{page.comparison_html}
{explanation(page)}
</main>
<footer>Synergy Serve model report. Charts drawn on the server with matplotlib; no external
resources are loaded. Live figures refresh every {REFRESH_S} s.</footer>
<script type="application/json" id="report-config">{config_json}</script>
<script nonce="{nonce}">{JS}</script>
</body>
</html>
"""


def _static_sections(card: ModelCard, folder: Path) -> str:
    key = (card.name, card.version, card.created_at.isoformat(), str(folder))
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    html = "\n".join(
        (
            glance(card, folder),
            quality(card, folder),
            calibration(card),
            training(card, folder),
            errors(card, folder),
        )
    )
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = html
    return html


def login_page(path: str, nonce: str) -> str:
    """The 401 page a browser gets for a report without a key: a form that reloads the page
    with `?key=` (the only place a key is accepted in the URL)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>API key needed - Synergy Serve</title><style nonce="{escape(nonce)}">{CSS}</style></head>
<body><main><section><h1>API key needed</h1>
<p>This server requires an API key. Enter one to view the report; it is sent in the page's
address (<code>?key=</code>), so use this only on a machine you trust.</p>
<form method="get" action="{escape(path)}">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="off" required>
<button type="submit">View report</button></form>
</section></main></body></html>
"""


def script_json(value: Any) -> str:
    """JSON safe inside an HTML <script> element: "<", ">" and "&" as \\u escapes (JSON
    allows them), so no text in it ("</script>", "<!--<script>", a card's sample review) can
    end the element early or switch the HTML parser into its escaped states, which would stop
    the page's script."""
    return (
        json.dumps(value, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
