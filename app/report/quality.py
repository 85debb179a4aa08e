"""The report page's held-out quality and calibration sections (the charts that apply are the
card's task's, `app.tasks`)."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path

from app.html import figure, missing, table, tile
from app.report import charts
from app.report.content import card_field, optional_artifact, per_class
from app.schemas.card import ModelCard, RegressionMetrics
from app.tasks import task_of


def quality(card: ModelCard, folder: Path) -> str:
    """The held-out quality section: the metrics and the charts of the card's task."""
    if card.metrics is None:
        return _no_metrics()
    return _LAYOUTS[task_of(card).quality_layout](card, folder)


def _classification_quality(card: ModelCard, folder: Path) -> str:
    m = card.classification_metrics()
    tiles = [
        tile("Accuracy", f"{m.accuracy:.4f}"),
        tile("Macro precision", f"{m.precision_macro:.4f}"),
        tile("Macro recall", f"{m.recall_macro:.4f}"),
        tile("Macro F1", f"{m.f1_macro:.4f}"),
    ]
    if m.roc_auc is not None:
        tiles.append(tile("ROC AUC", f"{m.roc_auc:.4f}"))
    classes = per_class(m.confusion_matrix, card.labels)
    classes_table = table(
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
    heatmap = figure(
        charts.confusion_heatmap(m.confusion_matrix, card.labels),
        f"Confusion matrix on the {m.evaluated_on} split ({m.test_size:,} rows).",
    )
    roc = ""
    if "roc_curve" in task_of(card).charts(card):
        points = card_field(card.metrics, "roc_curve")
        if points:
            roc = figure(
                charts.roc_curve(points, m.roc_auc),
                f"ROC curve on the {m.evaluated_on} split; positive label {card.labels[1]!r}.",
            )
        else:
            auc = f"ROC AUC is {m.roc_auc:.4f}; " if m.roc_auc is not None else ""
            roc = missing(
                f"ROC curve: {auc}the curve's points are not recorded for this version. "
                "Training records them from the next run (metrics.roc_curve)."
            )
    return f"""<section id="quality" aria-labelledby="quality-h">
<h2 id="quality-h">Held-out quality</h2>
<p class="lead">On the {escape(m.evaluated_on)} split, never used for fitting or early stopping
({m.test_size:,} rows). Per-class figures are computed from the confusion matrix.</p>
<div class="tiles">{"".join(tiles)}</div>
<div class="grid2"><div><h3>Per class</h3>{classes_table}</div><div>{heatmap}</div></div>
{roc}
</section>"""


def _no_metrics() -> str:
    return f"""<section id="quality" aria-labelledby="quality-h">
<h2 id="quality-h">Held-out quality</h2>
{missing("No held-out evaluation was given when this model was imported (synergy import --eval).")}
</section>"""


def _regression_quality(card: ModelCard, folder: Path) -> str:
    m = card.metrics
    # The card's validation ties a regressor to regression metrics.
    if not isinstance(m, RegressionMetrics):
        raise ValueError(f"model {card.name} has no held-out regression metrics")
    tiles = "".join(
        (
            tile("MAE", f"{m.mae:.4g}"),
            tile("RMSE", f"{m.rmse:.4g}"),
            tile("R²", f"{m.r2:.4f}"),
        )
    )
    per_target = ""
    if m.per_target:
        per_target = table(
            ["Target", "MAE", "RMSE", "R²"],
            [
                [escape(t), f"{v['mae']:.4g}", f"{v['rmse']:.4g}", f"{v['r2']:.4f}"]
                for t, v in m.per_target.items()
            ],
            numeric={1, 2, 3},
        )
    found = optional_artifact(card, folder, "errors_file", ())
    points = found.data.get("points") if isinstance(found.data, dict) else None
    if "residuals" in task_of(card).charts(card) and isinstance(points, list) and points:
        target = card.labels[0]
        charts_html = (
            f'<div class="grid2"><div>'
            f"{figure(charts.predicted_vs_true(points, target), 'Predicted against true.')}"
            f"</div><div>"
            f"{figure(charts.residual_histogram(points, target), 'Residuals.')}</div></div>"
        )
    else:
        charts_html = missing("Residuals: no held-out predictions recorded for this version.")
    return f"""<section id="quality" aria-labelledby="quality-h">
<h2 id="quality-h">Held-out quality</h2>
<p class="lead">On the {escape(m.evaluated_on)} split ({m.test_size:,} rows), averaged over
the targets.</p>
<div class="tiles">{tiles}</div>
{per_target}
{charts_html}
</section>"""


def calibration(card: ModelCard) -> str:
    """The calibration section: ECE before and after, the reliability diagram and table."""
    calibration = card_field(card, "calibration")
    if not isinstance(calibration, dict):
        body = missing(
            "Calibration: not recorded for this version (no ECE or reliability table in its card)."
        )
    else:
        bins = [b for b in calibration.get("reliability") or [] if isinstance(b, dict)]
        tiles = "".join(
            tile(label, f"{calibration[key]:.4f}")
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
            figure(
                charts.reliability_diagram(bins),
                f"Reliability of the served probabilities on the {evaluated} split.",
            )
            if bins
            else missing("Reliability table: not recorded for this version.")
        )
        reliability_table = table(
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
        reliability = f"<div><h3>Reliability table</h3>{reliability_table}</div>"
        body = f"""<p class="lead">Method: {method}; fitted on {fitted}; expected calibration
error (ECE, weighted gap between confidence and accuracy over the bins) on the {evaluated}
split.</p>
<div class="tiles">{tiles}</div>
<div class="grid2"><div>{chart}</div>{reliability}</div>"""
    return f"""<section id="calibration" aria-labelledby="calibration-h">
<h2 id="calibration-h">Calibration</h2>
{body}
</section>"""


# The task's held-out quality layout (`Task.quality_layout`) -> the section that draws it.
_LAYOUTS: dict[str, Callable[[ModelCard, Path], str]] = {
    "classes": _classification_quality,
    "values": _regression_quality,
}
