"""The report page: one self-contained HTML document per model version.

The parts that only depend on the card and its artifacts (tables, charts) are built once per
version and cached; the live part is filled by the page's script from the JSON endpoints
(`/metrics`, and `/monitoring`, `:explain` where this server has them), so the page refreshes
without a reload and works the same whether those features are there or not.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from app.report import charts
from app.report.assets import CSS, JS
from app.report.content import (
    card_field,
    digit_png,
    file_sizes,
    human_bytes,
    misclassified,
    optional_artifact,
    per_class,
    training_history,
)
from app.schemas.card import (
    ImageInput,
    ModelCard,
    RawTextInput,
    RegressionMetrics,
    TableInput,
    TabularInput,
    TextInput,
)

REFRESH_S = 5
EXCERPT_CHARS = 360
_CACHE_SIZE = 64
_cache: dict[tuple[str, int, str, str], str] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class PageRequest:
    """Everything one page needs.

    `base_path`: the version's URL prefix as the browser sees it
    (`<root_path>/v1/models/<name>/versions/<v>`); `monitoring_url`/`explain_url`: those
    endpoints where this server has them, else None (the script only calls endpoints that
    exist); `serving`: the live stats
    snapshot (`ServingStats.snapshot()`), shown at once and then refreshed; `nonce`: the CSP
    nonce of the inline script and style.
    """

    card: ModelCard
    folder: Path
    base_path: str
    state: str
    serving: dict[str, Any]
    monitoring_url: str | None
    explain_url: str | None
    nonce: str
    docs_path: str = "/docs"
    # The comparison of a shadow or canary with the serving version, drawn by
    # app.report.comparison ("" when the model has none).
    comparison_html: str = ""


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
{_live_section(page)}
{page.comparison_html}
{_explanation_section(page)}
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
            _glance(card, folder),
            _quality(card, folder),
            _calibration(card),
            _training(card, folder),
            _errors(card, folder),
        )
    )
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = html
    return html


def _missing(text: str) -> str:
    return f'<p class="missing">{escape(text)}</p>'


def _tile(label: str, value: str, *, words: bool = False) -> str:
    """A figure in a box. `words`: the value is words ("multiclass classification"), set
    smaller so the longest word fits a tile: tiles never break a word, only between words."""
    kind = "value words" if words else "value"
    return (
        f'<div class="tile"><span class="label">{escape(label)}</span>'
        f'<span class="{kind}">{escape(value)}</span></div>'
    )


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
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


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _glance(card: ModelCard, folder: Path) -> str:
    data = card.training_data
    spec = card.input
    if isinstance(spec, TabularInput):
        inputs = f"{spec.n_features} numeric features" + _table(
            ["Feature", "Unit", "Description"],
            [
                [escape(f.name), escape(f.unit or ""), escape(f.description or "")]
                for f in spec.features
            ],
        )
    elif isinstance(spec, TableInput):
        inputs = f"{spec.n_features} named features of mixed types" + _table(
            ["Feature", "Type", "Missing allowed", "Categories seen"],
            [
                [
                    escape(f.name),
                    escape(f.dtype),
                    "yes" if f.missing else "no",
                    escape(", ".join(f.categories or [])),
                ]
                for f in spec.features
            ],
        )
    elif isinstance(spec, RawTextInput):
        inputs = "<p>Raw text, given to the model as is (it tokenises it itself).</p>"
    elif isinstance(spec, ImageInput):
        inputs = (
            f"<p>Grey-level image, {spec.height} x {spec.width} pixels, values 0 to "
            f"{spec.max_value:g}. {escape(spec.description or '')}</p>"
        )
    else:
        inputs = (
            f"<p>Raw text: up to {spec.sequence_length} tokens (words"
            f"{' and word pairs' if spec.ngram_max > 1 else ''}), "
            f"{'lower-cased' if spec.lowercase else 'case kept'}; vocabulary in "
            f"<code>{escape(spec.vocabulary_file)}</code>. {escape(spec.description or '')}</p>"
        )
    sizes = file_sizes(card, folder)
    files = _table(
        ["File", "Size", "sha256"],
        [
            [
                f"<code>{escape(n)}</code>",
                escape(human_bytes(sizes[n])),
                f'<span class="hash">{escape(digest)}</span>',
            ]
            for n, digest in sorted(card.artifacts.items())
        ],
        numeric={1},
    )
    libraries = _table(
        ["Library", "Version"],
        [
            [escape(k), f"<code>{escape(v)}</code>"]
            for k, v in sorted(card.library_versions.items())
        ],
    )
    hyper = _table(
        ["Hyperparameter", "Value"],
        [
            [escape(k), escape(v if isinstance(v, str) else json.dumps(v))]
            for k, v in card.hyperparameters.items()
        ],
    )
    tiles = "".join(
        (
            _tile("Task", card.task.replace("-", " "), words=True),
            _tile("Framework", card.framework, words=True),
            _tile("Input", card.input.kind, words=True),
            _tile("Labels" if card.is_classifier else "Targets", str(len(card.labels))),
            _tile("Training rows", f"{data.train_size:,}" if data else "not recorded"),
            _tile("Held-out rows", f"{card.metrics.test_size:,}" if card.metrics else "none given"),
            _tile("Model size", human_bytes(sum(s or 0 for s in sizes.values()))),
            _tile(
                "Trained in",
                f"{card.training_seconds:g} s"
                if card.training_seconds is not None
                else "elsewhere",
            ),
        )
    )
    if data is not None:
        training_data = f"""<p>{escape(data.source)}</p>
<p>{data.train_size:,} training, {data.validation_size:,} validation and {data.test_size:,} test
rows; data sha256 <span class="hash">{escape(data.sha256)}</span>.
{escape(data.notes or "")}</p>"""
    else:
        training_data = "<p>Trained outside this project and imported; not recorded.</p>"
    origin = ""
    if card.imported is not None:
        record = card.imported
        scan = (
            f" Pickle scan ({escape(str(record.scan.get('scanner')))}): "
            f"{escape(str(record.scan.get('verdict')))}."
            if record.scan
            else ""
        )
        origin = (
            f"<h3>Imported</h3><p>{escape(record.estimator)} from "
            f"<code>{escape(record.source_file)}</code> ({escape(record.source_format)}), "
            f"stored as {escape(record.serialization)}.{scan}</p><ul>"
            + "".join(f"<li>{escape(note)}</li>" for note in record.inferred)
            + "</ul>"
        )
    extras = "".join(
        f"<h3>{title}</h3><p>{escape(text)}</p>"
        for title, text in (("Intended use", card.intended_use), ("Limitations", card.limitations))
        if text
    )
    return f"""<section id="glance" aria-labelledby="glance-h">
<h2 id="glance-h">At a glance</h2>
<div class="tiles">{tiles}</div>
<h3>Labels</h3><p>{", ".join(f"<code>{escape(label)}</code>" for label in card.labels)}</p>
<h3>Input</h3>{inputs}
<h3>Training data</h3>
{training_data}
{origin}
<p>Created {escape(card.created_at.isoformat())}, seed {card.seed}.</p>
{extras}
<div class="grid2"><div><h3>Files</h3>{files}</div>
<div><h3>Library versions</h3>{libraries}</div></div>
<details><summary>Hyperparameters</summary>{hyper}</details>
</section>"""


def _quality(card: ModelCard, folder: Path) -> str:
    m = card.metrics
    if m is None:
        return _no_metrics()
    if isinstance(m, RegressionMetrics):
        return _regression_quality(card, m, folder)
    tiles = [
        _tile("Accuracy", f"{m.accuracy:.4f}"),
        _tile("Macro precision", f"{m.precision_macro:.4f}"),
        _tile("Macro recall", f"{m.recall_macro:.4f}"),
        _tile("Macro F1", f"{m.f1_macro:.4f}"),
    ]
    if m.roc_auc is not None:
        tiles.append(_tile("ROC AUC", f"{m.roc_auc:.4f}"))
    classes = per_class(m.confusion_matrix, card.labels)
    table = _table(
        ["Label", "Support (rows)", "Precision", "Recall", "F1"],
        [
            [
                f"<code>{escape(c.label)}</code>",
                f"{c.support:,}",
                f"{c.precision:.4f}",
                f"{c.recall:.4f}",
                f"{c.f1:.4f}",
            ]
            for c in classes
        ],
        numeric={1, 2, 3, 4},
    )
    heatmap = _figure(
        charts.confusion_heatmap(m.confusion_matrix, card.labels),
        f"Confusion matrix on the {m.evaluated_on} split ({m.test_size:,} rows).",
    )
    roc = ""
    if card.task == "binary-classification":
        points = card_field(card.metrics, "roc_curve")
        if points:
            roc = _figure(
                charts.roc_curve(points, m.roc_auc),
                f"ROC curve on the {m.evaluated_on} split; positive label {card.labels[1]!r}.",
            )
        else:
            auc = f"ROC AUC is {m.roc_auc:.4f}; " if m.roc_auc is not None else ""
            roc = _missing(
                f"ROC curve: {auc}the curve's points are not recorded for this version. "
                "Training records them from the next run (metrics.roc_curve)."
            )
    return f"""<section id="quality" aria-labelledby="quality-h">
<h2 id="quality-h">Held-out quality</h2>
<p class="lead">On the {escape(m.evaluated_on)} split, never used for fitting or early stopping
({m.test_size:,} rows). Per-class figures are computed from the confusion matrix.</p>
<div class="tiles">{"".join(tiles)}</div>
<div class="grid2"><div><h3>Per class</h3>{table}</div><div>{heatmap}</div></div>
{roc}
</section>"""


def _no_metrics() -> str:
    return f"""<section id="quality" aria-labelledby="quality-h">
<h2 id="quality-h">Held-out quality</h2>
{_missing("No held-out evaluation was given when this model was imported (synergy import --eval).")}
</section>"""


def _regression_quality(card: ModelCard, m: RegressionMetrics, folder: Path) -> str:
    tiles = "".join(
        (
            _tile("MAE", f"{m.mae:.4g}"),
            _tile("RMSE", f"{m.rmse:.4g}"),
            _tile("R²", f"{m.r2:.4f}"),
        )
    )
    per_target = ""
    if m.per_target:
        per_target = _table(
            ["Target", "MAE", "RMSE", "R²"],
            [
                [escape(t), f"{v['mae']:.4g}", f"{v['rmse']:.4g}", f"{v['r2']:.4f}"]
                for t, v in m.per_target.items()
            ],
            numeric={1, 2, 3},
        )
    found = optional_artifact(card, folder, "errors_file", ())
    points = found.data.get("points") if isinstance(found.data, dict) else None
    if isinstance(points, list) and points:
        target = card.labels[0]
        charts_html = (
            f'<div class="grid2"><div>'
            f"{_figure(charts.predicted_vs_true(points, target), 'Predicted against true.')}"
            f"</div><div>"
            f"{_figure(charts.residual_histogram(points, target), 'Residuals.')}</div></div>"
        )
    else:
        charts_html = _missing("Residuals: no held-out predictions recorded for this version.")
    return f"""<section id="quality" aria-labelledby="quality-h">
<h2 id="quality-h">Held-out quality</h2>
<p class="lead">On the {escape(m.evaluated_on)} split ({m.test_size:,} rows), averaged over
the targets.</p>
<div class="tiles">{tiles}</div>
{per_target}
{charts_html}
</section>"""


def _calibration(card: ModelCard) -> str:
    calibration = card_field(card, "calibration")
    if not isinstance(calibration, dict):
        body = _missing(
            "Calibration: not recorded for this version (no ECE or reliability table in its card)."
        )
    else:
        bins = [b for b in calibration.get("reliability") or [] if isinstance(b, dict)]
        tiles = "".join(
            _tile(label, f"{calibration[key]:.4f}")
            for label, key in (
                ("ECE before", "ece_before"),
                ("ECE after (served)", "ece_after"),
                ("Temperature", "temperature"),
            )
            if isinstance(calibration.get(key), int | float)
        )
        method = escape(str(calibration.get("method", "")))
        fitted = escape(str(calibration.get("fitted_on", "")))
        evaluated = escape(str(calibration.get("evaluated_on", "test")))
        chart = (
            _figure(
                charts.reliability_diagram(bins),
                f"Reliability of the served probabilities on the {evaluated} split.",
            )
            if bins
            else _missing("Reliability table: not recorded for this version.")
        )
        table = _table(
            ["Confidence bin", "Rows", "Mean confidence", "Accuracy"],
            [
                [
                    f"{b.get('low', 0):.2f} to {b.get('high', 0):.2f}",
                    f"{int(b.get('count', 0)):,}",
                    f"{b.get('mean_confidence', 0):.4f}",
                    f"{b.get('accuracy', 0):.4f}",
                ]
                for b in bins
            ],
            numeric={1, 2, 3},
        )
        body = f"""<p class="lead">Method: {method}; fitted on {fitted}; expected calibration
error (ECE, weighted gap between confidence and accuracy over the bins) on the {evaluated}
split.</p>
<div class="tiles">{tiles}</div>
<div class="grid2"><div>{chart}</div><div><h3>Reliability table</h3>{table}</div></div>"""
    return f"""<section id="calibration" aria-labelledby="calibration-h">
<h2 id="calibration-h">Calibration</h2>
{body}
</section>"""


def _training(card: ModelCard, folder: Path) -> str:
    history = training_history(card, folder)
    facts = ", ".join(
        f"{k.replace('_', ' ')} {card.hyperparameters[k]}"
        for k in ("max_epochs", "epochs_run", "best_val_loss", "early_stopping")
        if k in card.hyperparameters
    )
    facts_html = f"<p>{escape(facts)}.</p>" if facts else ""
    trained = (
        f"Trained in {card.training_seconds:g} s."
        if card.training_seconds is not None
        else "Trained outside this project and imported."
    )
    if history.missing is not None:
        body = _missing(
            f"Training curves: {history.missing}"
            + (
                " (its card lists no per-epoch history artifact)."
                if history.missing.startswith("not recorded")
                else "."
            )
        )
    else:
        data = history.data
        epochs = max(len(v) for v in data.values())
        body = _figure(
            charts.training_curves(data),
            f"Per-epoch training history ({epochs} epochs) from the artifact, hashed in the card.",
        )
    return f"""<section id="training" aria-labelledby="training-h">
<h2 id="training-h">Training</h2>
<p class="lead">{trained}</p>
{facts_html}
{body}
</section>"""


def _errors(card: ModelCard, folder: Path) -> str:
    found = misclassified(card, folder)
    if found.missing is not None:
        body = _missing(
            f"Misclassified held-out examples: {found.missing}. They are recorded at "
            "training time (errors.json, listed in the card); the server never sees the "
            "held-out data."
        )
    else:
        examples = found.data["examples"]
        wrong = found.data.get("wrong")
        intro = (
            f'<p class="lead">The {len(examples)} held-out rows with the largest absolute '
            "errors (true and predicted values), largest first.</p>"
            if not card.is_classifier
            else f'<p class="lead">{len(examples)} of the {wrong:,} held-out rows the model got '
            "wrong, most confident mistakes first.</p>"
            if isinstance(wrong, int)
            else f'<p class="lead">{len(examples)} held-out rows the model got wrong.</p>'
        )
        body = intro + (_rendered_examples(card, examples) if examples else "")
    return f"""<section id="errors" aria-labelledby="errors-h">
<h2 id="errors-h">Mistakes on held-out data</h2>
{body}
</section>"""


def _verdict(example: dict[str, Any]) -> str:
    confidence = example.get("confidence")
    conf = f" ({confidence:.0%})" if isinstance(confidence, int | float) else ""
    return (
        f'<span class="verdict">true <strong>{escape(str(example["label"]))}</strong>, '
        f'predicted <span class="wrong">{escape(str(example["predicted"]))}</span>{conf}</span>'
    )


def _rendered_examples(card: ModelCard, examples: list[dict[str, Any]]) -> str:
    spec = card.input
    if isinstance(spec, ImageInput):
        cells = []
        for e in examples:
            png = digit_png(e["instance"])
            if png is None:
                continue
            alt = f"Held-out image, true label {e['label']}, predicted {e['predicted']}"
            cells.append(
                f'<figure><img src="data:image/png;base64,{png}" width="112" height="112" '
                f'alt="{escape(alt)}"><figcaption>{_verdict(e)}</figcaption></figure>'
            )
        return f'<div class="examples">{"".join(cells)}</div>'
    if isinstance(spec, TextInput | RawTextInput):
        items = []
        for e in examples:
            text = str(e["instance"])
            excerpt = text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")
            items.append(f"<p>{_verdict(e)}</p><blockquote>{escape(excerpt)}</blockquote>")
        return "".join(items)
    else:
        names = [f.name for f in spec.features]
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
        return _table(
            ["True", "Predicted", "Confidence", *names],
            rows,
            numeric=set(range(2, 3 + len(names))),
        )


def _live_section(page: PageRequest) -> str:
    monitoring = (
        ""
        if page.monitoring_url
        else _missing(
            "Live accuracy and drift: not available on this server (it has no monitoring endpoint)."
        )
    )
    return f"""<section id="live" aria-labelledby="live-h">
<h2 id="live-h">Live</h2>
<p class="lead">Since this server started: requests to this version, latency percentiles over
recent successful requests (milliseconds), and the labels it predicted.</p>
<noscript><p class="missing">The live figures need JavaScript; the JSON is at
<a href="{escape(page.base_path)}/metrics">/metrics</a>.</p></noscript>
<div id="live-tiles" class="tiles" aria-live="polite"></div>
<h3>Predicted labels</h3>
<div id="live-labels"></div>
<h3>Live accuracy and drift</h3>
<div id="live-monitoring">{monitoring}</div>
<p id="live-status" class="status" aria-live="polite"></p>
</section>"""


def _explanation_section(page: PageRequest) -> str:
    card = page.card
    example = card.examples[0] if card.examples else None
    sample = ""
    if example is not None:
        if isinstance(card.input, ImageInput):
            png = digit_png(example.instance)
            if png is not None:
                sample = (
                    f'<figure class="sample"><img src="data:image/png;base64,{png}" width="112" '
                    f'height="112" alt="Sample held-out digit, true label '
                    f'{escape(str(example.label))}">'
                    f"<figcaption>Sample input from the card: a held-out "
                    f"{escape(str(example.label))}.</figcaption></figure>"
                )
        elif isinstance(card.input, TextInput | RawTextInput):
            text = str(example.instance)
            excerpt = text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")
            sample = (
                f"<p>Sample input from the card (label "
                f"<strong>{escape(str(example.label))}</strong>):</p><blockquote>{escape(excerpt)}"
                "</blockquote>"
            )
        else:
            sample = (
                f"<p>Sample input from the card (label <strong>{escape(str(example.label))}"
                f"</strong>): <code>{escape(json.dumps(example.instance))}</code></p>"
            )
    result = (
        '<div id="explanation-result" aria-live="polite"></div>'
        if page.explain_url
        else '<div id="explanation-result">'
        + _missing("Explanations: not available on this server (it has no :explain endpoint).")
        + "</div>"
    )
    return f"""<section id="explanation" aria-labelledby="explanation-h">
<h2 id="explanation-h">Explanation of a sample input</h2>
{sample}
{result}
</section>"""


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
