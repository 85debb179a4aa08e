"""`python -m training train {iris-knn|binary-mlp|mnist-cnn|imdb-sentiment|all} [options]`
(also `python -m training MODEL [options]`): train on real data and write
`models/<name>/<version>/` with the model files, card.json and the drift profile.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from app.schemas.card import HeldOutMetrics, ModelCard
from training.backend import MissingTrainingDependency, import_training_backend
from training.common import TrainOptions, train_and_save
from training.data import DataError
from training.ood import calibrate_folder

TRAINERS = {
    "iris-knn": "training.iris_knn",
    "binary-mlp": "training.binary_mlp",
    "mnist-cnn": "training.mnist_cnn",
    "imdb-sentiment": "training.imdb_sentiment",
}
# The trainers that need TensorFlow (Keras through tf.data); the others train with the
# service's own dependencies (requirements/runtime.lock).
KERAS_TRAINERS = frozenset({"binary-mlp", "mnist-cnn", "imdb-sentiment"})


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `train` command's arguments."""
    parser.add_argument("model", choices=[*TRAINERS, "all"], help="which model to train")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with local copies of the datasets (mnist.npz, "
        "aclImdb_train.tar.gz); omit to download them on a connected machine",
    )
    parser.add_argument(
        "--epochs",
        type=_positive,
        default=None,
        help="training epochs (Keras models; default: each model's own)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--version",
        type=_positive,
        default=None,
        help="version folder to write (default: the next integer)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("models"), help="models directory (default: models/)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace the version folder if it exists"
    )
    parser.add_argument(
        "--max-rows",
        type=_positive,
        default=None,
        help="train on at most this many rows (smoke tests)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--skip-ood",
        action="store_true",
        help="do not calibrate the out-of-domain warnings (`python -m training ood NAME` later)",
    )


def _calibrate(name: str, options: TrainOptions, report: list[str]) -> Callable[[Path], ModelCard]:
    """The out-of-domain calibration of a freshly trained version (`training.ood`), run on
    its folder before it is moved into place, so it serves with warnings from the start.
    A smoke run (--max-rows) keeps the card without the section, saying so: thresholds
    chosen on a model trained on a few rows would be meaningless."""

    def finish(folder: Path) -> ModelCard:
        if options.max_rows is not None:
            report.append(
                f"{name}: out-of-domain warnings not calibrated (a --max-rows smoke run); run "
                f"`python -m training ood {name}` on a full training"
            )
            return ModelCard.read(folder)
        card, checks, _ = calibrate_folder(name, folder, options.data_dir, options.seed)
        if checks is None:
            report.append(f"{name}: its input kind runs no out-of-domain check")
        else:
            report.append(
                f"{name}: out-of-domain warnings calibrated, {checks.held_out_warned:.2%} of "
                f"the held-out split warned; "
                + "; ".join(
                    f"{family} {share:.0%}"
                    for family, share in checks.out_of_domain_warned.items()
                    if "refused" not in family
                )
            )
        return card

    return finish


def run(args: argparse.Namespace) -> int:
    """Train the requested models; print one summary line each; exit 0 on success, 2 with a
    one-line error."""
    if args.data_dir is not None and not args.data_dir.is_dir():
        print(
            f"error: --data-dir {args.data_dir} is not a directory; point it at the folder "
            "holding mnist.npz and aclImdb_train.tar.gz",
            file=sys.stderr,
        )
        return 2
    names = list(TRAINERS) if args.model == "all" else [args.model]
    if KERAS_TRAINERS.intersection(names):
        try:
            import_training_backend()
        except MissingTrainingDependency as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    options = TrainOptions(
        data_dir=args.data_dir,
        epochs=args.epochs,
        seed=args.seed,
        max_rows=args.max_rows,
        quiet=args.quiet,
    )
    started = time.perf_counter()
    for name in names:
        trainer = importlib.import_module(TRAINERS[name]).train
        calibrated: list[str] = []
        try:
            card, folder = train_and_save(
                name,
                trainer,
                args.out,
                options,
                version=args.version,
                replace=args.force,
                finish=None if args.skip_ood else _calibrate(name, options, calibrated),
            )
        except (DataError, FileExistsError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 2
        except ValidationError as exc:
            print(f"error: {name}: the card does not validate: {exc}", file=sys.stderr)
            return 1
        m = card.metrics
        assert isinstance(m, HeldOutMetrics)  # the trainers make classifiers
        auc = f", roc_auc {m.roc_auc:.4f}" if m.roc_auc is not None else ""
        print(
            f"{name} v{card.version}: {m.evaluated_on} accuracy {m.accuracy:.4f}, "
            f"macro F1 {m.f1_macro:.4f}{auc} on {m.test_size} held-out rows; "
            f"trained in {card.training_seconds:.0f}s -> {folder}",
            flush=True,
        )
        if args.skip_ood:
            print(
                f"{name}: out-of-domain warnings not calibrated (--skip-ood); run "
                f"`python -m training ood {name}` before serving it",
                flush=True,
            )
        for line in calibrated:
            print(line, flush=True)
    if len(names) > 1:
        print(f"all {len(names)} models trained in {time.perf_counter() - started:.0f}s")
    return 0
