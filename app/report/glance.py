"""The report page's "At a glance" section: what the model is, takes and was trained on."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from app.html import table, tile
from app.kinds import kind_of
from app.report.content import file_sizes, human_bytes
from app.schemas.card import ModelCard
from app.tasks import task_of


def glance(card: ModelCard, folder: Path) -> str:
    """The section: tiles, labels, the input (its kind's words), training data, files."""
    data = card.training_data
    sizes = file_sizes(card, folder)
    files = table(
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
    libraries = table(
        ["Library", "Version"],
        [
            [escape(k), f"<code>{escape(v)}</code>"]
            for k, v in sorted(card.library_versions.items())
        ],
    )
    hyper = table(
        ["Hyperparameter", "Value"],
        [
            [escape(k), escape(v if isinstance(v, str) else json.dumps(v))]
            for k, v in card.hyperparameters.items()
        ],
    )
    tiles = "".join(
        (
            tile("Task", card.task.replace("-", " "), words=True),
            tile("Framework", card.framework, words=True),
            tile("Input", card.input.kind, words=True),
            tile(task_of(card).outputs_heading, str(len(card.labels))),
            tile("Training rows", f"{data.train_size:,}" if data else "not recorded"),
            tile("Held-out rows", f"{card.metrics.test_size:,}" if card.metrics else "none given"),
            tile("Model size", human_bytes(sum(s or 0 for s in sizes.values()))),
            tile(
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
<h3>Input</h3>{kind_of(card).report_inputs(card)}
<h3>Training data</h3>
{training_data}
{origin}
<p>Created {escape(card.created_at.isoformat())}, seed {card.seed}.</p>
{extras}
<div class="grid2"><div><h3>Files</h3>{files}</div>
<div><h3>Library versions</h3>{libraries}</div></div>
<details><summary>Hyperparameters</summary>{hyper}</details>
</section>"""
