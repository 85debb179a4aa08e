"""`synergy import MODEL_FILE --name NAME ...`: the console script installed with the package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.importing.data import read_table
from training.importing.errors import ImportRefused
from training.importing.save import import_file

HELP = "import a fitted model as the next served version"
DESCRIPTION = (
    "Import a fitted scikit-learn model (.skops; .pkl/.joblib with --trust-pickle) as the next "
    "version of NAME in the models folder; a running server picks it up without a restart."
)


def add_arguments(bring: argparse.ArgumentParser) -> None:
    """The `import` command's arguments (`synergy import`, `python -m training import`)."""
    bring.add_argument("model_file", type=Path)
    bring.add_argument("--name", required=True, help="the model's name (URL-safe)")
    bring.add_argument("--example", type=Path, help="CSV (header row) or .npz (x) of sample rows")
    bring.add_argument("--eval", type=Path, help="held-out CSV or .npz (x, y) to evaluate on")
    bring.add_argument("--target", help="the evaluation CSV's target column(s), comma-separated")
    bring.add_argument("--task", choices=("auto", "classification", "regression"), default="auto")
    bring.add_argument("--labels", help="class labels (or target names), comma-separated")
    bring.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read a pickle/joblib file (it can run code; it is scanned first)",
    )
    bring.add_argument(
        "--vocabulary",
        type=Path,
        help="a Keras model taking token ids: its vocabulary, one token a line (line k: id k)",
    )
    bring.add_argument("--models-dir", type=Path, default=Path("models"))
    bring.add_argument("--version", type=int, help="the version number (default: the next)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synergy", description="Synergy Serve tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_arguments(commands.add_parser("import", help=HELP, description=DESCRIPTION))
    return parser


def main(argv: list[str] | None = None) -> int:
    """`synergy import ...`: 0 on success, 2 with a clear message when the import is refused."""
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Import one model file; 0 on success, 2 with a clear message when it is refused."""
    try:
        example = read_table(args.example, None)[0] if args.example else None
        evaluation = read_table(args.eval, args.target) if args.eval else None
        if evaluation is not None and evaluation[1] is None:
            raise ImportRefused("--eval needs --target COLUMN (or an .npz with y)")
        result = import_file(
            args.model_file,
            args.name,
            example=example,
            evaluation=evaluation,
            task=args.task,
            labels=args.labels.split(",") if args.labels else None,
            trust_pickle=args.trust_pickle,
            models_dir=args.models_dir,
            version=args.version,
            vocabulary=args.vocabulary,
        )
    except ImportRefused as exc:
        print(f"synergy import: refused: {exc}", file=sys.stderr)
        return 2
    card = result.card
    print(
        f"imported {result.name} version {result.version} ({card.task}, "
        f"{card.input.kind} input, labels {', '.join(card.labels)}) into {result.folder} "
        f"in {result.seconds:.2f} s"
    )
    if card.metrics is not None:
        print(
            "held-out metrics: "
            + card.metrics.model_dump_json(exclude={"confusion_matrix", "roc_curve", "per_target"})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
