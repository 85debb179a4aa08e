"""`python -m training COMMAND ...`: the one command line of training/.

    train MODEL|all [options]       train a project model on real data (training.train)
    profile FOLDER...               add a drift reference profile (training.profile)
    backfill errors FOLDER          add errors.json to an older artifact (training.backfill)
    ood [NAME...]                   calibrate the out-of-domain warnings (training.ood)
    import MODEL_FILE --name NAME   serve a model you bring (training.importing; also the
                                    `synergy import` console script)

`python -m training MODEL [options]` (no command word) still trains, as the Makefile and older
docs write it. Every command exits 0 on success, 2 with a one-line error on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

# name -> (help, module): each module has `add_arguments(parser)` and `run(args) -> int`. Only
# the command run is imported: training iris-knn needs neither TensorFlow nor the importer.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "train the served models on real data and write carded, versioned artifacts",
        "training.train",
    ),
    "profile": (
        "add a drift reference profile (profile.json) to existing model versions",
        "training.profile",
    ),
    "backfill": (
        "add newer evaluation artifacts to an existing model version",
        "training.backfill",
    ),
    "ood": (
        "calibrate the out-of-domain warnings of the latest versions and record them in the cards",
        "training.ood",
    ),
    "import": ("import a fitted model as the next served version", "training.importing.cli"),
}


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line: one subparser per command, with its arguments for `command` (every
    command's when None)."""
    top = argparse.ArgumentParser(
        prog="python -m training",
        description="Train, profile, backfill, calibrate and import the served models.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, module_name) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if command in (None, name):
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return top


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process's), run the command, return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] not in COMMANDS and arguments[0] not in ("-h", "--help"):
        arguments.insert(0, "train")  # `python -m training iris-knn ...`
    command = arguments[0] if arguments and arguments[0] in COMMANDS else ""
    args = parser(command).parse_args(arguments)
    # SIGTERM becomes SystemExit, so temporary folders are removed on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    status: int = args.run(args)
    return status
