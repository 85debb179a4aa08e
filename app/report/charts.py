"""Server-side SVG charts for the report page, drawn with matplotlib.

Only the object-oriented API (`Figure`), never `pyplot`: no global figure state and no GUI
backend, and the SVG canvas needs no display (the Agg backend is selected anyway, before
anything could pick another). Text stays text in the SVG (`svg.fonttype: none`), so the
browser renders it in the page's font: no font file is embedded or downloaded, and screen
readers and searches see the labels. Each chart is an `<svg role="img">` with an
`aria-label` and a `<title>` saying what it shows.

matplotlib's state (rcParams, the font cache) is process-wide, so charts are drawn one at a
time under a lock; callers run this off the event loop.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from html import escape
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

_LOCK = threading.Lock()
# Colours with at least 4.5:1 contrast on white (WCAG AA for text and lines).
BLUE = "#1f5fa8"
ORANGE = "#b5530b"
GREY = "#555555"
# Any: matplotlib types rc keys as literals; these are checked by rc_context at run time.
_STYLE: Any = {
    "svg.fonttype": "none",
    "svg.hashsalt": "synergy-report",  # stable element ids: the same card gives the same page
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: nothing to download
    "font.size": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11.0,
    "axes.labelcolor": "#222222",
    "xtick.color": "#222222",
    "ytick.color": "#222222",
}


def _svg(figure: Figure, label: str, shape: str = "") -> str:
    """The figure as an inline `<svg>` that scales with its container, labelled for
    assistive technology."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    svg = text[text.index("<svg") :]
    # Drop the fixed width/height (pt): the viewBox keeps the aspect ratio, CSS sets the width.
    opening = svg[: svg.index(">") + 1]
    cleaned = re.sub(r'\s(width|height)="[^"]*"', "", opening)
    cleaned = cleaned.replace(
        "<svg ", f'<svg class="chart{shape}" role="img" aria-label="{escape(label)}" ', 1
    )
    return cleaned + f"<title>{escape(label)}</title>" + svg[len(opening) :]


def _figure(width_in: float, height_in: float) -> Figure:
    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def confusion_heatmap(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """Rows true labels, columns predicted, each cell its count; the colour is the share of
    the row (the true class), so small classes show as clearly as large ones."""
    n = len(labels)
    return count_heatmap(
        matrix,
        labels,
        cmap="Blues",
        axis_labels=("Predicted label", "True label"),
        colorbar_label="Share of the true class (%)",
        description=f"Confusion matrix on held-out data, {n} by {n}: rows are true labels, "
        "columns predicted labels; each cell shows a count",
    )


def count_heatmap(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    *,
    cmap: str,
    axis_labels: tuple[str, str],
    colorbar_label: str,
    description: str,
) -> str:
    """A square matrix of counts over `labels` (rows, columns) as an SVG heatmap: each cell
    its count, its colour the share of its row; `axis_labels` (columns, rows); `description`
    for readers who cannot see the chart."""
    n = len(labels)
    size = min(7.0, 2.6 + 0.45 * n)
    with _LOCK, matplotlib.rc_context(_STYLE):
        figure = _figure(size + 1.0, size)
        axes = figure.add_subplot()
        shares = [[count / max(1, sum(row)) * 100.0 for count in row] for row in matrix]
        image = axes.imshow(shares, cmap=cmap, vmin=0.0, vmax=100.0)
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                axes.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=9 if n <= 10 else 7,
                    color="white" if shares[i][j] > 65 else "#111111",
                )
        axes.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 3 else 0)
        axes.set_yticks(range(n), labels)
        axes.set_xlabel(axis_labels[0])
        axes.set_ylabel(axis_labels[1])
        axes.spines[:].set_visible(False)
        colorbar = figure.colorbar(image, ax=axes, shrink=0.8)
        colorbar.set_label(colorbar_label)
        return _svg(figure, description)


def roc_curve(points: Sequence[Sequence[float]], auc: float | None) -> str:
    """The ROC curve from (false positive rate, true positive rate) points, with the chance
    diagonal."""
    with _LOCK, matplotlib.rc_context(_STYLE):
        figure = _figure(4.6, 4.2)
        axes = figure.add_subplot()
        axes.plot([0, 1], [0, 1], linestyle="--", color=GREY, linewidth=1, label="chance")
        fpr = [p[0] for p in points]
        tpr = [p[1] for p in points]
        name = f"model (AUC {auc:.3f})" if auc is not None else "model"
        axes.plot(fpr, tpr, color=BLUE, linewidth=2, label=name)
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.01)
        axes.set_aspect("equal")
        axes.set_xlabel("False positive rate (share of negatives)")
        axes.set_ylabel("True positive rate (share of positives)")
        axes.legend(loc="lower right", frameon=False)
        return _svg(figure, f"ROC curve on held-out data; {name}", " square")


def reliability_diagram(bins: Sequence[dict[str, float]]) -> str:
    """Accuracy against mean confidence per bin of the top probability; the diagonal is a
    perfectly calibrated model. Bars span each bin; empty bins are left out."""
    with _LOCK, matplotlib.rc_context(_STYLE):
        figure = _figure(4.6, 4.2)
        axes = figure.add_subplot()
        filled = [b for b in bins if b.get("count", 0) > 0]
        axes.bar(
            [(b["low"] + b["high"]) / 2 for b in filled],
            [b["accuracy"] for b in filled],
            width=[(b["high"] - b["low"]) * 0.95 for b in filled],
            color=BLUE,
            alpha=0.75,
            label="accuracy in the bin",
        )
        axes.plot(
            [b["mean_confidence"] for b in filled],
            [b["accuracy"] for b in filled],
            "o",
            color=ORANGE,
            markersize=4,
            label="at the bin's mean confidence",
        )
        axes.plot([0, 1], [0, 1], linestyle="--", color=GREY, linewidth=1, label="perfect")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.01)
        axes.set_xlabel("Confidence (top probability)")
        axes.set_ylabel("Accuracy (share correct)")
        axes.legend(loc="upper left", frameon=False, fontsize=8)
        return _svg(
            figure,
            f"Reliability diagram over {len(filled)} non-empty confidence bins: accuracy "
            "against confidence, the diagonal is perfect calibration",
            " square",
        )


def training_curves(history: dict[str, list[float]]) -> str:
    """One panel per metric (loss first, then accuracy, then the rest), training and
    validation values per epoch."""
    keys = [k for k in history if not k.startswith("val_") and history[k]]
    metrics = [k for k in ("loss", "accuracy") if k in keys] or keys[:2]
    with _LOCK, matplotlib.rc_context(_STYLE):
        figure = _figure(4.2 * len(metrics), 3.6)
        panels = figure.subplots(1, len(metrics), squeeze=False)[0]
        epochs = 0
        for axes, metric in zip(panels, metrics, strict=True):
            values = history[metric]
            epochs = max(epochs, len(values))
            axes.plot(range(1, len(values) + 1), values, color=BLUE, linewidth=2, label="training")
            validation = history.get(f"val_{metric}")
            if validation:
                axes.plot(
                    range(1, len(validation) + 1),
                    validation,
                    color=ORANGE,
                    linewidth=2,
                    linestyle="--",
                    label="validation",
                )
            axes.set_title(_TITLES.get(metric, metric))
            axes.set_xlabel("Epoch")
            axes.set_ylabel(_UNITS.get(metric, metric))
            axes.legend(frameon=False, fontsize=8)
        return _svg(
            figure,
            f"Training curves over {epochs} epochs: {', '.join(metrics)}, training and validation",
            " wide",
        )


_TITLES = {"loss": "Loss", "accuracy": "Accuracy"}
_UNITS = {"loss": "Loss (cross-entropy)", "accuracy": "Accuracy (share correct)"}


def predicted_vs_true(points: Sequence[Sequence[float]], target: str) -> str:
    """A regressor's held-out predictions against the true values, with the y = x line."""
    with _LOCK, matplotlib.rc_context(_STYLE):
        figure = _figure(4.6, 4.2)
        axes = figure.add_subplot()
        true = [p[0] for p in points]
        predicted = [p[1] for p in points]
        low, high = min(true + predicted), max(true + predicted)
        axes.plot([low, high], [low, high], linestyle="--", color=GREY, linewidth=1)
        axes.scatter(true, predicted, s=9, color=BLUE, alpha=0.6)
        axes.set_xlabel(f"True {target}")
        axes.set_ylabel(f"Predicted {target}")
        return _svg(figure, f"Predicted against true {target} on held-out data, {len(points)} rows")


def residual_histogram(points: Sequence[Sequence[float]], target: str) -> str:
    """The distribution of held-out residuals (true minus predicted)."""
    with _LOCK, matplotlib.rc_context(_STYLE):
        figure = _figure(4.6, 3.4)
        axes = figure.add_subplot()
        residuals = [p[0] - p[1] for p in points]
        axes.hist(residuals, bins=min(30, max(5, len(residuals) // 5)), color=BLUE)
        axes.axvline(0.0, color=GREY, linestyle="--", linewidth=1)
        axes.set_xlabel(f"Residual (true - predicted {target})")
        axes.set_ylabel("Rows")
        return _svg(figure, f"Histogram of {len(residuals)} held-out residuals of {target}")
