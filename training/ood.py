"""Calibrate the out-of-domain warnings of a model version and record them in its card.

    python -m training ood [--models-dir models] [--data-dir ../shared/data] [NAME ...]

For each model (the latest version in `--models-dir`), the check its input kind runs
(`InputAdapter.out_of_domain_check`) is calibrated by `CALIBRATIONS[check]`: the thresholds are
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import ServingError
from app.kinds import InputAdapter, kind_of, make_adapter
from app.runtimes import load_model, prepare_runtimes
from app.schemas.card import ModelCard, OutOfDomainChecks, sha256_file
from training.ood_words import GERMAN, SPANISH
from training.splits import held_out_set, load_split

IN_DOMAIN_GOAL = 0.01
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
SHARES = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))
FLOOR = 1e-4


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


def image_warnings(
    model: Any, adapter: InputAdapter, samples: list[tuple[str, Any]]
) -> tuple[int, int]:
    """(warned, refused) of image samples through the served path, in one batch: each
    (route, payload) is a grid ("grid", read by `to_row`) or an image file (any other route,
    read by `image_to_row`); a refused sample (ServingError, a 4xx) is counted apart and
    never warned."""
    from training.digit_families import read_sample  # OpenCV: only where images are read

    rows, refused = [], 0
    for route, payload in samples:
        try:
            rows.append(read_sample(adapter, route, payload))
        except ServingError:
            refused += 1
    if not rows:
        return 0, refused
    features = adapter.featurize(rows)
    _, embedded = model.predict_embedded(features)
    return sum(1 for flags in adapter.warnings(rows, features, embedded) or [] if flags), refused


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


EMBEDDING_FILE = "embedding.npz"
IMAGE_QUANTILE = 99.2  # percent of held-out digits within the threshold (goal: <= 1% warned)
RELIABLE_ACCURACY = 0.95  # generated digit families read this well bound the image threshold
GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz+-=%&#@?*$!<>()[]{}/\\~^"


def _glyph_png(text: str, rng: np.random.Generator) -> bytes:
    """Dark text on light paper (Pillow's bundled font), 80-200 px, as a PNG."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    size = int(rng.integers(40, 110))
    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (size * (len(text) + 1), size * 2), int(rng.integers(200, 256)))
    ImageDraw.Draw(canvas).text(
        (size // 2, size // 3),
        text,
        fill=int(rng.integers(0, 60)),
        font=font,
        stroke_width=int(rng.integers(0, max(1, size // 15) + 1)),
    )
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def _png(grey: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_families(
    x_test: np.ndarray, rng: np.random.Generator, count: int
) -> dict[str, list[bytes]]:
    """Generated non-digits as image files: letters and symbols, several digits in one image,
    noise, textures."""
    pick = rng.choice(len(x_test), size=(count, 3))
    several = []
    for first, second, third in pick:
        parts = [x_test[first], x_test[second]] + ([x_test[third]] if rng.random() < 0.3 else [])
        row = np.concatenate([np.pad(p, 2) for p in parts], axis=1).astype(np.float64)
        several.append(_png(255.0 - row))
    side = 96
    ys, xs = np.indices((side, side))
    textures = []
    for _ in range(count):
        kind = rng.integers(3)
        if kind == 0:  # stripes at any angle and period
            angle, period = rng.uniform(0, np.pi), rng.uniform(6, 30)
            wave = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
            grey = 128 + 100 * wave
        elif kind == 1:  # blobs: smoothed noise, thresholded
            import cv2

            field = cv2.GaussianBlur(rng.normal(size=(side, side)), (0, 0), rng.uniform(3, 8))
            grey = np.where(field > np.percentile(field, rng.uniform(50, 85)), 30.0, 220.0)
        else:  # a checkerboard
            cell = int(rng.integers(6, 24))
            grey = np.where(((ys // cell) + (xs // cell)) % 2 == 0, 30.0, 220.0)
        textures.append(_png(grey))
    return {
        "letters and symbols": [
            _glyph_png(str(rng.choice(list(GLYPHS))), rng) for _ in range(count)
        ],
        "several digits in one image": several,
        "noise": [_png(rng.uniform(0, 255, size=(64, 64))) for _ in range(count)],
        "textures (stripes, blobs, checkerboards)": textures,
    }


def _last_layer(card: ModelCard, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The kernel (D, C) and bias (C,) of the Keras model's last layer (its logits)."""
    import keras

    network = keras.saving.load_model(folder / card.model_file, compile=False)
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in network.layers[-1].get_weights())
    return kernel, bias


def calibrate_image(
    card: ModelCard, folder: Path, data_dir: Path | None, seed: int, count: int = 300
) -> tuple[OutOfDomainChecks, dict[str, float], dict[str, Any]]:
    """Energy score of the network's logits (Liu et al., 2020), for a network trained with
    outlier exposure (`training/outliers.py`): the threshold is the smallest that warns at
    most 0.8% of the MNIST test digits and at most 1% of the generated in-domain digit
    families (`training/digit_families.py`) that the model reads at least 95% right, pooled;
    the families it reads worse (8 px sources, hard shadows) are reported, not bounded.
    The file EMBEDDING_FILE written into `folder` holds the
    last layer's kernel and bias (the logits are computed from the penultimate features the
    runtime returns) and the class means and precision of those features (the Mahalanobis
    statistics, kept for diagnosis). Returns the checks, the share warned per out-of-domain
    family (the held-out split of `training/outliers.py` and the older families here; a
    refused image counts as caught) and the arrays."""
    from app.kinds.image import energy_scores
    from app.preprocessing.image import images_to_model_input
    from training.data import load_mnist
    from training.digit_families import families as digit_families
    from training.digit_families import png, read_labelled
    from training.outliers import families as outlier_families

    prepare_runtimes([card.framework], 2)
    rng = np.random.default_rng(seed)
    probe = OutOfDomainChecks(
        method="probe",
        fitted_on="probe",
        embedding_statistics_file=EMBEDDING_FILE,
        held_out_warned=0.0,
        out_of_domain_warned={},
    )
    model = load_model(_with(card, probe), folder, buckets=(1, 64, 256))
    plain = make_adapter(
        card.model_copy(update={"out_of_domain": None}), folder, max_image_pixels=10**8
    )

    def embed(images: np.ndarray) -> np.ndarray:
        chunks = [
            model.predict_embedded(images_to_model_input(images[i : i + 256]))[1]
            for i in range(0, len(images), 256)
        ]
        return np.concatenate([c for c in chunks if c is not None]).astype(np.float64)

    mnist = load_mnist(data_dir)
    train = embed(mnist.x_train.astype(np.float32))
    labels = np.asarray(mnist.y_train)
    means = np.stack([train[labels == c].mean(axis=0) for c in range(len(card.labels))])
    centred = train - means[labels]
    covariance = centred.T @ centred / len(train)
    precision = np.linalg.pinv(covariance + 1e-6 * np.eye(len(covariance)))
    kernel, bias = _last_layer(card, folder)
    held = energy_scores(embed(mnist.x_test.astype(np.float32)), kernel, bias)

    # In-domain families: digits the server must read. Those it reads reliably (at least
    # RELIABLE_ACCURACY right) bound the threshold; on the others (8 px sources, hard shadows)
    # a warning is deserved as often as the answer is wrong, so they are only reported.
    family_scores: dict[str, np.ndarray] = {}
    accuracy: dict[str, float] = {}
    for name, samples in digit_families(mnist.x_test, mnist.y_test, 200, seed):
        rows, truth = read_labelled(plain, samples)
        probabilities, embedded = model.predict_embedded(images_to_model_input(np.asarray(rows)))
        assert embedded is not None
        family_scores[name] = energy_scores(embedded.astype(np.float64), kernel, bias)
        accuracy[name] = float((probabilities.argmax(axis=1) == np.asarray(truth)).sum()) / len(
            samples
        )
    reliable = [name for name in family_scores if accuracy[name] >= RELIABLE_ACCURACY]
    pooled = np.concatenate([family_scores[name] for name in reliable])
    limit = float(max(np.percentile(held, IMAGE_QUANTILE), np.percentile(pooled, 99.0)))
    np.savez(
        folder / EMBEDDING_FILE,
        means=means.astype(np.float32),
        precision=precision,
        kernel=kernel,
        bias=bias,
    )
    in_domain = {
        f"{name} (read {accuracy[name]:.0%} right)": float((s > limit).mean())
        for name, s in family_scores.items()
    }
    checks = OutOfDomainChecks(
        method="images: energy score -logsumexp(logits) of a network trained with outlier "
        "exposure (Hendrycks et al., 2019; Liu et al., 2020), the logits computed from the "
        f"penultimate features and the last layer; warned above {limit:.3f} "
        "(unlike_training_images). Also several_digits: another component clear of the frame "
        "beside the digit read, with at least 25% of its ink and 60% of its height "
        "(app.preprocessing.image.OTHER_DIGIT_*)",
        fitted_on=f"threshold: the smallest warning at most {100 - IMAGE_QUANTILE:.1f}% of the "
        f"{len(held)} MNIST test digits and at most 1% of {len(pooled)} generated in-domain "
        f"digits (training/digit_families.py, seed {seed}, pooled over the families read at "
        f"least {RELIABLE_ACCURACY:.0%} right: {', '.join(reliable)}); Mahalanobis statistics "
        f"(kept for diagnosis): the {len(train)} MNIST training images",
        embedding_statistics_file=EMBEDDING_FILE,
        max_energy=round(limit, 4),
        held_out_warned=round(float((held > limit).mean()), 4),
        in_domain_warned=_rounded(in_domain),
        out_of_domain_warned={},
        probability_floor=FLOOR,
    )
    scored = _with(card, checks)
    adapter = make_adapter(scored, folder, max_image_pixels=10**8)
    model = load_model(scored, folder, buckets=(1, 64, 256))
    generated = {
        name: [png(make()) for _ in range(count)]
        for name, make in outlier_families("held-out", mnist.x_test, rng).items()
    }
    generated.update(
        {
            f"{name} (first generator)": files
            for name, files in image_families(mnist.x_test, rng, count).items()
        }
    )
    shares: dict[str, float] = {}
    for family, files in generated.items():
        warned, refused = image_warnings(model, adapter, [("file", data) for data in files])
        shares[family] = (warned + refused) / len(files)
        shares[f"{family}: refused (4xx)"] = refused / len(files)
    checks = checks.model_copy(update={"out_of_domain_warned": _rounded(shares)})
    return checks, shares, {"means": means, "precision": precision, "kernel": kernel}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `ood` command's arguments."""
    root = Path(__file__).resolve().parents[1]
    parser.add_argument(
        "names", nargs="*", default=["iris-knn", "binary-mlp", "imdb-sentiment", "mnist-cnn"]
    )
    parser.add_argument("--models-dir", type=Path, default=root / "models")
    parser.add_argument("--data-dir", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write cards")


@dataclass(frozen=True)
class Calibration:
    """One version to calibrate: what every calibration may read."""

    name: str
    card: ModelCard
    folder: Path
    held_out: list[Any]  # the held-out split's instances, as the trainers hold them
    data_dir: Path | None
    seed: int
    dry_run: bool


# (the checks, the share warned per out-of-domain family, the card to write them into)
Calibrated = tuple[OutOfDomainChecks, dict[str, float], ModelCard]


def _feature_range(job: Calibration) -> Calibrated:
    train = np.asarray(load_split(job.name, None).x_train, dtype=np.float64)
    checks, shares = calibrate_tabular(job.card, job.folder, job.held_out, train, job.seed)
    return checks, shares, job.card


def _unknown_words(job: Calibration) -> Calibrated:
    texts = [str(text) for text in job.held_out]
    checks, shares = calibrate_text(job.card, job.folder, texts, job.seed)
    return checks, shares, job.card


def _embedding_distance(job: Calibration) -> Calibrated:
    checks, shares, _ = calibrate_image(job.card, job.folder, job.data_dir, job.seed)
    card = job.card
    if not job.dry_run:  # the statistics file is now one of the version's artifacts
        artifacts = {**card.artifacts, EMBEDDING_FILE: sha256_file(job.folder / EMBEDDING_FILE)}
        card = card.model_copy(update={"artifacts": artifacts})
    return checks, shares, card


# Keyed by the check a kind runs (`InputAdapter.out_of_domain_check`), so the kinds stay the
# one place that knows which kind warns how.
CALIBRATIONS: dict[str, Callable[[Calibration], Calibrated]] = {
    "feature-range": _feature_range,
    "unknown-words": _unknown_words,
    "embedding-distance": _embedding_distance,
}


def calibrate_folder(
    name: str, folder: Path, data_dir: Path | None, seed: int, dry_run: bool = False
) -> tuple[ModelCard, OutOfDomainChecks | None, dict[str, float]]:
    """Calibrate the version in `folder` (model `name`, one training knows) and, unless
    `dry_run`, write the checks into its card (and the statistics file beside it). Returns
    the card, the checks (None when the model's input kind runs no out-of-domain check) and
    the share warned per generated out-of-domain family."""
    card = ModelCard.read(folder)
    check = kind_of(card).out_of_domain_check
    if check is None:
        return card, None, {}
    held_out = held_out_set(name, data_dir)[0]
    job = Calibration(name, card, folder, held_out, data_dir, seed, dry_run)
    checks, shares, card = CALIBRATIONS[check](job)
    card = _with(card, checks)
    if not dry_run:
        card.write(folder)
    return card, checks, shares


def print_table(card: ModelCard, checks: OutOfDomainChecks, shares: dict[str, float]) -> None:
    """The calibration's figures as a Markdown table (for docs/warnings.md)."""
    print(f"\n{card.name} v{card.version}: {checks.method}")
    print(f"| family | warned |\n|---|---:|\n| in-domain held-out | {checks.held_out_warned:.4f} |")
    for family, share in shares.items():
        print(f"| {family} | {share:.4f} |")
    for family, share in (checks.in_domain_warned or {}).items():
        print(f"| in-domain: {family} | {share:.4f} |")


def run(args: argparse.Namespace) -> int:
    """Calibrate each named model's latest version; print a table each (a model whose kind
    runs no out-of-domain check is skipped, saying so); exit 0."""
    for name in args.names:
        folder = _latest(args.models_dir, name)
        card, checks, shares = calibrate_folder(
            name, folder, args.data_dir, args.seed, args.dry_run
        )
        if checks is None:
            print(f"\n{name}: skipped, its input kind runs no out-of-domain check")
            continue
        print_table(card, checks, shares)
    return 0
