"""The report page's training, mistakes, live and explanation sections."""

from __future__ import annotations

from html import escape
from pathlib import Path

from app.html import figure, missing
from app.kinds import kind_of
from app.report import charts
from app.report.content import misclassified, training_history
from app.report.request import PageRequest
from app.schemas.card import ModelCard
from app.tasks import task_of


def training(card: ModelCard, folder: Path) -> str:
    """The training section: how long, the facts of the run, the per-epoch curves."""
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
        body = missing(
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
        body = figure(
            charts.training_curves(data),
            f"Per-epoch training history ({epochs} epochs) from the artifact, hashed in the card.",
        )
    return f"""<section id="training" aria-labelledby="training-h">
<h2 id="training-h">Training</h2>
<p class="lead">{trained}</p>
{facts_html}
{body}
</section>"""


def errors(card: ModelCard, folder: Path) -> str:
    """The mistakes section: held-out examples the model got wrong, drawn by their kind."""
    found = misclassified(card, folder)
    if found.missing is not None:
        body = missing(
            f"Misclassified held-out examples: {found.missing}. They are recorded at "
            "training time (errors.json, listed in the card); the server never sees the "
            "held-out data."
        )
    else:
        examples = found.data["examples"]
        wrong = found.data.get("wrong")
        lead = task_of(card).errors_lead(len(examples), wrong if isinstance(wrong, int) else None)
        intro = f'<p class="lead">{escape(lead)}</p>'
        body = intro + (kind_of(card).report_examples(card, examples) if examples else "")
    return f"""<section id="errors" aria-labelledby="errors-h">
<h2 id="errors-h">Mistakes on held-out data</h2>
{body}
</section>"""


def live(page: PageRequest) -> str:
    """The live section's frame (the page's script fills it from the JSON endpoints)."""
    monitoring = (
        ""
        if page.monitoring_url
        else missing(
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


def explanation(page: PageRequest) -> str:
    """The explanation section: the card's sample input (drawn by its kind), explained by
    the page's script where this server has `:explain`."""
    card = page.card
    example = card.examples[0] if card.examples else None
    sample = ""
    if example is not None:
        sample = kind_of(card).report_sample(card, example)
    result = (
        '<div id="explanation-result" aria-live="polite"></div>'
        if page.explain_url
        else '<div id="explanation-result">'
        + missing("Explanations: not available on this server (it has no :explain endpoint).")
        + "</div>"
    )
    return f"""<section id="explanation" aria-labelledby="explanation-h">
<h2 id="explanation-h">Explanation of a sample input</h2>
{sample}
{result}
</section>"""
