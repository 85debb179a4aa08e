"""The values part of the report's comparison section (a regressor's candidate): each
version's live errors, the paired or unpaired test, and for a shadow the distribution of the
differences between the two versions' predictions (a histogram)."""

from __future__ import annotations

from html import escape
from typing import Any

import matplotlib

from app.report import charts


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def differences_histogram(bars: list[dict[str, Any]]) -> str:
    """Bars (low, high, rows) of candidate - baseline differences -> a bar chart (SVG)."""
    with charts._LOCK, matplotlib.rc_context(charts._STYLE):
        figure = charts._figure(6.0, 2.6)
        axes = figure.add_subplot()
        names = [f"{b['low']:.3g} to {b['high']:.3g}" for b in bars]
        axes.bar(range(len(bars)), [b["rows"] for b in bars], color=charts.ORANGE)
        axes.set_xticks(range(len(bars)), names, rotation=60, ha="right", fontsize=7)
        axes.set_ylabel("Rows")
        axes.set_xlabel("Candidate - baseline prediction (log-spaced bins)")
        return charts._svg(
            figure,
            "Histogram of the differences between the candidate's and the baseline's "
            "predictions on the same requests: "
            + "; ".join(f"{n}: {b['rows']} rows" for n, b in zip(names, bars, strict=True)),
        )


def values_part(c: dict[str, Any]) -> str:
    """The HTML of a values comparison (`c`: the comparison's JSON)."""
    errors = c["errors"]
    out: list[str] = []
    rows = []
    for role in ("baseline", "candidate"):
        e = errors[role]
        mae_ci = e.get("mae_interval_95")
        rows.append(
            [
                escape(role),
                fmt(e.get("rows", errors.get("feedback_rows"))),
                fmt(e["mae"], 4),
                fmt(mae_ci[0], 4) + " to " + fmt(mae_ci[1], 4) if mae_ci else "-",
                fmt(e["rmse"], 4),
            ]
        )
    out.append(table(["", "Rows with feedback", "MAE", "MAE 95% interval", "RMSE"], rows))
    difference = errors["difference"]
    test = errors.get("paired_t_test") or errors.get("welch_t_test") or {}
    name = "paired t-test of absolute errors" if "paired_t_test" in errors else "Welch's t-test"
    low, high = difference["interval_95"]
    out.append(
        f"<p>MAE difference (candidate - baseline): {fmt(difference['mae'], 4)}, 95% "
        f"interval {fmt(low, 4)} to {fmt(high, 4)}; {name}: p = {fmt(test.get('p_value'), 4)} "
        f"(two-sided), p = {fmt(test.get('p_candidate_worse'), 4)} that the candidate is "
        "worse.</p>"
    )
    if "differences" in c:
        d, agreement = c["differences"], c["agreement"]
        q = d["quantiles"]
        out.append(
            f"<p>Differences of the predictions on {d['rows']} rows: mean {fmt(d['mean'], 4)} "
            f"(95% interval {fmt(d['interval_95'][0], 4)} to {fmt(d['interval_95'][1], 4)}); "
            f"median {fmt(q['p50'], 4)}, 5% to 95%: {fmt(q['p5'], 4)} to {fmt(q['p95'], 4)}. "
            + (
                f"Within {fmt(agreement['tolerance'], 4)}: {fmt(agreement['rate'])}."
                if agreement["tolerance"] is not None
                else "No tolerance set: agreement not judged."
            )
            + "</p>"
        )
        if d["histogram"]:
            out.append(
                f"<figure>{differences_histogram(d['histogram'])}<figcaption>Differences "
                "between the two versions' predictions on the same requests.</figcaption>"
                "</figure>"
            )
    return "\n".join(out)
