"""Calibrate the out-of-domain warnings of a model version and record them in its card.

    python -m training.ood [--models-dir models] [--data-dir ../shared/data] [NAME ...]

For each tabular and text model (the latest version in `--models-dir`), the thresholds are
chosen on data: the loosest setting that warns at most 1% of the model's in-domain held-out
split (the split its card's metrics come from), then measured on out-of-domain families
generated here. The result goes into the card's `out_of_domain` section (the card is not
hashed; its artifacts are unchanged), and is printed as a table for docs/warnings.md.

Families: tabular - every feature x10, one feature x10, every feature x0.1, one feature
shifted by 10 training ranges; text - German and Spanish reviews (7-30 words drawn from
common words of each language), two-word English reviews, letter salad.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.adapters import InputAdapter, make_adapter
from app.schemas.card import ModelCard, OutOfDomainChecks
from training.data import held_out_sets

IN_DOMAIN_GOAL = 0.01
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
SHARES = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))
FLOOR = 1e-4

GERMAN = [
    "der",
    "die",
    "das",
    "und",
    "ist",
    "nicht",
    "ein",
    "eine",
    "ich",
    "es",
    "war",
    "sehr",
    "gut",
    "schlecht",
    "film",
    "schauspieler",
    "geschichte",
    "langweilig",
    "spannend",
    "wirklich",
    "leider",
    "aber",
    "auch",
    "mit",
    "für",
    "auf",
    "zu",
    "hat",
    "haben",
    "wir",
    "sie",
    "er",
    "kein",
    "keine",
    "ganz",
    "schön",
    "großartig",
    "furchtbar",
    "ende",
    "anfang",
    "musik",
    "kamera",
    "regie",
    "handlung",
    "figuren",
    "zuschauer",
    "kino",
    "abend",
    "zeit",
    "geld",
    "verschwendet",
    "empfehlen",
    "nie",
    "wieder",
    "besser",
    "schlechter",
    "meisterwerk",
    "enttäuschend",
    "überraschend",
    "witzig",
    "traurig",
]
SPANISH = [
    "el",
    "la",
    "los",
    "las",
    "y",
    "es",
    "no",
    "un",
    "una",
    "yo",
    "fue",
    "muy",
    "bueno",
    "malo",
    "película",
    "actores",
    "historia",
    "aburrida",
    "emocionante",
    "realmente",
    "pero",
    "también",
    "con",
    "para",
    "en",
    "que",
    "tiene",
    "han",
    "nosotros",
    "ella",
    "él",
    "ningún",
    "bastante",
    "hermosa",
    "genial",
    "terrible",
    "final",
    "principio",
    "música",
    "cámara",
    "dirección",
    "trama",
    "personajes",
    "espectadores",
    "cine",
    "noche",
    "tiempo",
    "dinero",
    "perdido",
    "recomendar",
    "nunca",
    "más",
    "mejor",
    "peor",
    "obra",
    "maestra",
    "decepcionante",
    "sorprendente",
    "divertida",
    "triste",
]


def _latest(models_dir: Path, name: str) -> Path:
    return max(
        (p for p in (models_dir / name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )


def _share_warned(adapter: InputAdapter, instances: list[Any]) -> float:
    rows = []
    for instance in instances:
        try:
            rows.append(adapter.to_row(instance))
        except Exception:  # noqa: BLE001, S112 - a refused input is not served, so never warned
            continue
    if not rows:
        return 1.0
    warned = adapter.warnings(rows, adapter.featurize(rows))
    if warned is None:
        return 0.0
    return sum(1 for row in warned if row) / len(instances)


def _with(card: ModelCard, checks: OutOfDomainChecks) -> ModelCard:
    return card.model_copy(update={"out_of_domain": checks})


def calibrate_tabular(
    card: ModelCard, folder: Path, held_out: list[Any], train: np.ndarray, seed: int
) -> tuple[OutOfDomainChecks, dict[str, float]]:
    """The smallest margin (fraction of each feature's training range) beyond the training
    minimum and maximum that warns at most 1% of the held-out rows."""
    low, high = train.min(axis=0), train.max(axis=0)
    spread = np.maximum(high - low, 1e-6)
    rng = np.random.default_rng(seed)
    test = np.asarray(held_out, dtype=np.float64)
    families: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "every feature x10": lambda x: x * 10.0,
        "one feature x10": lambda x: _one(x, rng, lambda v: v * 10.0),
        "every feature x0.1": lambda x: x * 0.1,
        "one feature + 10 ranges": lambda x: _one(x, rng, lambda v: v + 10.0 * spread.mean()),
    }
    for margin in MARGINS:
        checks = OutOfDomainChecks(
            method=f"tabular: a feature outside [min - {margin:g} x range, max + {margin:g} x "
            "range] of the training split",
            fitted_on="the training split's per-feature minimum and maximum; the margin is the "
            f"smallest of {list(MARGINS)} warning at most 1% of the held-out split",
            feature_low=(low - margin * spread).tolist(),
            feature_high=(high + margin * spread).tolist(),
            held_out_warned=0.0,
            out_of_domain_warned={},
            probability_floor=FLOOR,
        )
        adapter = make_adapter(_with(card, checks), folder)
        rate = _share_warned(adapter, list(test))
        if rate <= IN_DOMAIN_GOAL:
            break
    shares = {
        name: _share_warned(adapter, list(make(test.copy()))) for name, make in families.items()
    }
    return checks.model_copy(
        update={"held_out_warned": round(rate, 4), "out_of_domain_warned": _rounded(shares)}
    ), shares


def _one(x: np.ndarray, rng: np.random.Generator, change: Callable[[Any], Any]) -> np.ndarray:
    columns = rng.integers(0, x.shape[1], size=len(x))
    for row, column in enumerate(columns):
        x[row, column] = change(x[row, column])
    return x


def _rounded(shares: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in shares.items()}


def _review(words: list[str], rng: np.random.Generator, low: int, high: int) -> str:
    count = int(rng.integers(low, high + 1))
    return " ".join(str(w) for w in rng.choice(words, size=count)).capitalize() + "."


def calibrate_text(
    card: ModelCard, folder: Path, held_out: list[str], seed: int
) -> tuple[OutOfDomainChecks, dict[str, float]]:
    """The smallest unknown-word share warning at most 1% of the held-out reviews, and a
    minimum of known words below every held-out review's count."""
    rng = np.random.default_rng(seed)
    base = make_adapter(card, folder)
    vectorizer = base.vectorizer  # type: ignore[attr-defined]
    counts = np.array([vectorizer.word_counts(text) for text in held_out], dtype=np.float64)
    unknown = 1.0 - counts[:, 1] / np.maximum(counts[:, 0], 1.0)
    share = next(s for s in SHARES if float((unknown > s).mean()) <= IN_DOMAIN_GOAL)
    min_known = int(min(8, max(1, np.percentile(counts[:, 1], 0.5))))
    english = [w for w in vectorizer.vocabulary[1:2000] if " " not in w]
    families = {
        "German reviews (7-30 words)": [_review(GERMAN, rng, 7, 30) for _ in range(300)],
        "Spanish reviews (7-30 words)": [_review(SPANISH, rng, 7, 30) for _ in range(300)],
        "two-word English reviews": [_review(english, rng, 2, 2) for _ in range(300)],
        "letter salad": [
            " ".join(
                "".join(rng.choice(list("qxzjkvwy"), size=int(rng.integers(3, 9))))
                for _ in range(int(rng.integers(5, 20)))
            )
            + " good"
            for _ in range(300)
        ],
    }
    checks = OutOfDomainChecks(
        method=f"text: more than {share:g} of the words outside the vocabulary "
        f"(unknown_words), or fewer than {min_known} known words (too_few_words)",
        fitted_on="the held-out reviews: the smallest share (steps of 0.05) warning at most 1% "
        "of them; the known-word minimum at most their 0.5th percentile (and at most 8)",
        max_unknown_share=share,
        min_known_words=min_known,
        held_out_warned=0.0,
        out_of_domain_warned={},
        probability_floor=FLOOR,
    )
    adapter = make_adapter(_with(card, checks), folder)
    rate = _share_warned(adapter, held_out)
    shares = {name: _share_warned(adapter, texts) for name, texts in families.items()}
    return checks.model_copy(
        update={"held_out_warned": round(rate, 4), "out_of_domain_warned": _rounded(shares)}
    ), shares


def _train_split(name: str) -> np.ndarray:
    from sklearn.datasets import load_iris, make_classification
    from sklearn.model_selection import train_test_split

    if name == "iris-knn":
        x, y = load_iris(return_X_y=True)
        train, _, _, _ = train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)
    else:
        x, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
        train, _, _, _ = train_test_split(
            x.astype(np.float32), y, test_size=0.3, stratify=y, random_state=42
        )
    return np.asarray(train, dtype=np.float64)


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=["iris-knn", "binary-mlp", "imdb-sentiment"])
    parser.add_argument("--models-dir", type=Path, default=root / "models")
    parser.add_argument("--data-dir", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write cards")
    args = parser.parse_args()
    held = held_out_sets(args.data_dir)
    for name in args.names:
        folder = _latest(args.models_dir, name)
        card = ModelCard.read(folder)
        instances = held[name][0]
        if card.input.kind == "tabular":
            checks, shares = calibrate_tabular(
                card, folder, instances, _train_split(name), args.seed
            )
        elif card.input.kind == "text":
            checks, shares = calibrate_text(card, folder, [str(t) for t in instances], args.seed)
        else:
            print(f"{name}: no calibration for {card.input.kind} inputs here")
            continue
        print(f"\n{name} v{card.version}: {checks.method}")
        print(
            "| family | warned |\n|---|---:|\n"
            f"| in-domain held-out | {checks.held_out_warned:.4f} |"
        )
        for family, share in shares.items():
            print(f"| {family} | {share:.4f} |")
        if not args.dry_run:
            _with(card, checks).write(folder)


if __name__ == "__main__":
    main()
