"""The report page's "Candidate vs serving version" section: the comparison of a model's
shadow or canary with the version it would replace, its verdict and the decisions taken.

Drawn on the server when the page is requested (the comparison is a few bounded queries,
`app.monitoring.promotion`); a reload shows newer figures. Charts: each version's live
accuracy with its 95% interval, and for a shadow the matrix of the two versions' labels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

import matplotlib

from app.report import charts
from app.report.comparison_values import fmt as _fmt
from app.report.comparison_values import table as _table
from app.report.comparison_values import values_part

SECTION_ID = "comparison"


def accuracy_intervals(rows: Sequence[tuple[str, float, float, float]]) -> str:
    """(name, accuracy, low, high) per version -> horizontal interval chart (SVG)."""
    with charts._LOCK, matplotlib.rc_context(charts._STYLE):
        figure = charts._figure(6.0, 0.6 + 0.55 * len(rows))
        axes = figure.add_subplot()
        for i, (_, accuracy, low, high) in enumerate(rows):
            colour = charts.BLUE if i == 0 else charts.ORANGE
            axes.errorbar(
                [accuracy],
                [i],
                xerr=[[accuracy - low], [high - accuracy]],
                fmt="o",
                color=colour,
                capsize=4,
            )
            axes.text(high, i, f"  {accuracy:.3f}", va="center", fontsize=9, color="#222222")
        axes.set_yticks(range(len(rows)), [name for name, *_ in rows])
        axes.set_ylim(-0.6, len(rows) - 0.4)
        axes.set_xlim(max(0.0, min(low for *_, low, _ in rows) - 0.05), 1.05)
        axes.set_xlabel("Live accuracy on rows with feedback (95% interval)")
        return charts._svg(
            figure,
            "Live accuracy of the baseline and the candidate with 95% intervals: "
            + "; ".join(f"{name} {a:.3f} ({lo:.3f} to {hi:.3f})" for name, a, lo, hi in rows),
        )


def label_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """The shadow's label matrix (rows: the baseline's label, columns: the candidate's)."""
    n = len(labels)
    return charts.count_heatmap(
        matrix,
        labels,
        cmap="Oranges",
        axis_labels=("Candidate's label", "Baseline's label"),
        colorbar_label="Share of the baseline's label (%)",
        description=f"Labels of the baseline (rows) against the shadow candidate (columns), "
        f"{n} by {n}; off the diagonal the two disagree; each cell shows a count of rows",
    )


def _version(part: dict[str, Any]) -> str:
    label = f" ({part['label']})" if part.get("label") else ""
    return f"version {part['version']}{label}"


def section(
    comparison: dict[str, Any] | None, decisions: list[dict[str, Any]], note: str = ""
) -> str:
    """The section's HTML (blocking: draws charts; call off the event loop). `comparison`:
    the JSON of GET .../comparison, None when there is none (then `note` says why)."""
    parts = [
        f'<section id="{SECTION_ID}" aria-labelledby="{SECTION_ID}-h">',
        f'<h2 id="{SECTION_ID}-h">Candidate vs serving version</h2>',
    ]
    if comparison is None or comparison.get("kind") is None:
        if comparison is not None:
            note = comparison["verdict"]["text"]
        parts.append(f'<p class="missing">{escape(note or "No shadow or canary to compare.")}</p>')
    else:
        parts.append(_body(comparison))
    if decisions:
        rows = [
            [
                escape(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(d["created_at"]))),
                escape(d["action"]),
                escape(d["decided_by"]),
                f"{d['candidate']} over {d['baseline']}",
                escape(d["verdict"]),
            ]
            for d in decisions[:20]
        ]
        parts.append("<h3>Decisions</h3>")
        parts.append(_table(["When", "Action", "By", "Versions", "Why"], rows))
    parts.append(
        '<p class="status">As of this page\'s load; JSON: <code>GET /v1/models/{name}/'
        "comparison</code> and <code>/decisions</code>.</p></section>"
    )
    return "\n".join(parts)


def _body(c: dict[str, Any]) -> str:
    verdict = c["verdict"]
    out = [
        f'<p class="lead">{escape(c["kind"].capitalize())}: candidate '
        f"{escape(_version(c['candidate']))} against {escape(_version(c['baseline']))}. "
        f"<strong>Verdict: {escape(verdict['text'])}</strong>"
        + (
            f" &mdash; decision in force: <strong>{escape(c['decision']['action'])}</strong> "
            f"({escape(c['decision']['decided_by'])})."
            if c.get("decision")
            else "."
        )
        + "</p>"
    ]
    if "errors" in c:  # a comparison of values (a regressor's)
        out.append(values_part(c))
    else:
        out.append(_labels_part(c))
    if c["kind"] != "shadow":
        drift = c.get("drift", {})
        cells = [
            [
                escape(role),
                _fmt(drift.get(role, {}).get("rows")),
                "yes" if drift.get(role, {}).get("flagged") else "no",
                escape(", ".join(drift.get(role, {}).get("flagged_statistics", [])) or "-"),
            ]
            for role in ("baseline", "candidate")
        ]
        out.append("<h3>Input drift of each version's traffic</h3>")
        out.append(_table(["", "Rows", "Drift flagged", "Statistics"], cells))
    serving = c["serving"]
    out.append("<h3>Latency and errors (this replica)</h3>")
    out.append(
        _table(
            ["", "Requests or copies", "Error rate", "p99 ms"],
            [
                [
                    escape(role),
                    _fmt(serving[role].get("requests", serving[role].get("copies"))),
                    _fmt(serving[role].get("error_rate"), 4),
                    _fmt(serving[role].get("p99_ms"), 1),
                ]
                for role in ("baseline", "candidate")
            ],
        )
    )
    return "\n".join(out)


def _labels_part(c: dict[str, Any]) -> str:
    """Accuracy, its test and, for a shadow, agreement and the label matrix."""
    out: list[str] = []
    accuracy = c["accuracy"]
    base, cand = accuracy["baseline"], accuracy["candidate"]
    rows = [
        ["baseline", _version(c["baseline"]), base],
        ["candidate", _version(c["candidate"]), cand],
    ]
    out.append(
        _table(
            ["", "Version", "Rows with feedback", "Accuracy", "95% interval"],
            [
                [
                    escape(role),
                    escape(name),
                    _fmt(figures["rows"]),
                    _fmt(figures["accuracy"]),
                    f"{figures['interval_95'][0]:.3f} to {figures['interval_95'][1]:.3f}",
                ]
                for role, name, figures in rows
            ],
        )
    )
    if base["accuracy"] is not None and cand["accuracy"] is not None:
        chart = accuracy_intervals(
            [
                (f"baseline v{c['baseline']['version']}", base["accuracy"], *base["interval_95"]),
                (
                    f"candidate v{c['candidate']['version']}",
                    cand["accuracy"],
                    *cand["interval_95"],
                ),
            ]
        )
        out.append(f"<figure>{chart}<figcaption>Live accuracy with 95% intervals.</figcaption>")
        out.append("</figure>")
    difference = accuracy["difference"]
    test = accuracy.get("mcnemar") or accuracy.get("z_test") or {}
    name = "McNemar's exact test" if "mcnemar" in accuracy else "two-proportion z-test"
    out.append(
        f"<p>Difference (candidate - baseline): {difference['value']:+.3f}, 95% interval "
        f"{difference['interval_95'][0]:+.3f} to {difference['interval_95'][1]:+.3f}; "
        f"{name}: p = {_fmt(test.get('p_value'), 4)} (two-sided), "
        f"p = {_fmt(test.get('p_candidate_worse'), 4)} that the candidate is worse.</p>"
    )
    if c["kind"] == "shadow":
        agreement = c["agreement"]
        out.append(
            f"<p>Agreement: {_fmt(agreement['rate'])} on {agreement['rows']} rows (95% interval "
            f"{agreement['interval_95'][0]:.3f} to {agreement['interval_95'][1]:.3f}).</p>"
        )
        matrix = c["disagreement"]
        if matrix["rows"] and matrix["labels"]:
            out.append(
                f"<figure>{label_matrix(matrix['matrix'], matrix['labels'])}<figcaption>"
                "Labels of both versions on the same requests.</figcaption></figure>"
            )
    return "\n".join(out)
