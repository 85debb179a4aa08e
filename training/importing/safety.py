"""Reading a user's model file without running code from it.

- `.skops`: rebuilt by skops with the server's audited trust list (`app.runtimes.trust`);
  any other type is refused by name.
- `.pkl`/`.pickle`/`.joblib`: a pickle runs code when it is read, so it is refused unless the
  user vouches for it (`trust_pickle`); even then it is scanned statically first with
  picklescan (its imports are read, nothing is executed) and refused if it imports anything
  outside the libraries a fitted estimator is made of. The scan's result goes in the card.
- `.keras`: its `config.json` is read from the zip and checked before Keras deserialises
  anything (no `Lambda` layer, no class from a module outside Keras unless trusted), then it
  is loaded with `safe_mode=True`. `.h5` (no safe mode; CVE-2025-9905) only when trusted.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from training.importing.errors import ImportRefused

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
# Top-level packages a pickled scikit-learn estimator legitimately imports from.
PICKLE_ALLOWED_PACKAGES = frozenset(
    {"sklearn", "numpy", "scipy", "joblib", "collections", "copyreg", "_codecs", "pandas"}
)
# Keras layers that carry Python code (bytecode or a lambda) in the saved file.
KERAS_CODE_LAYERS = frozenset({"Lambda", "TFOpLambda"})


@dataclass
class LoadedModel:
    """A model read from a file, and how it was read (recorded in the card)."""

    model: Any
    source_format: str  # skops, pickle, joblib, keras, in-memory
    scan: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def read_h5(path: Path, trust: bool) -> LoadedModel:
    """A Keras `.h5` file: no safe mode (CVE-2025-9905), so only when the user vouches for
    it (`trust`); raises ImportRefused."""
    if not trust:
        raise ImportRefused(
            f"{path.name}: .h5 files are read without Keras's safe mode (CVE-2025-9905); "
            "save the model as .keras (model.save('model.keras')), or pass --trust-pickle "
            "if you trust its author"
        )
    import keras

    return LoadedModel(keras.saving.load_model(path, compile=False), "keras")


def scan_pickle(path: Path) -> dict[str, Any]:
    """picklescan's static scan of a pickle/joblib file: the globals it imports, each with
    picklescan's verdict, and ours (`verdict`: clean, or refused with `reason`)."""
    from picklescan.scanner import scan_file_path

    result = scan_file_path(str(path))
    found = [
        {"module": g.module, "name": g.name, "safety": str(getattr(g.safety, "value", g.safety))}
        for g in result.globals
    ]
    dangerous = [f"{g['module']}.{g['name']}" for g in found if g["safety"] == "dangerous"]
    foreign = [
        f"{g['module']}.{g['name']}"
        for g in found
        if g["module"].split(".")[0] not in PICKLE_ALLOWED_PACKAGES
    ]
    refused = sorted(set(dangerous + foreign))
    return {
        "scanner": "picklescan",
        "scanner_version": installed_version("picklescan"),
        "globals": found,
        "verdict": "refused" if refused else "clean",
        "refused_globals": refused,
    }


def read_pickle(path: Path, trust: bool) -> LoadedModel:
    """A pickle/joblib file: refused unless `trust`, then scanned before it is read."""
    if not trust:
        raise ImportRefused(
            f"{path.name} is a pickle: reading it runs whatever code it holds. Save the model "
            "with skops instead (skops.io.dump(model, 'model.skops')), or pass --trust-pickle "
            "(trust_pickle=True) if you trust its author: it is then scanned before it is read"
        )
    scan = scan_pickle(path)
    if scan["refused_globals"]:
        raise ImportRefused(
            f"{path.name} carries code: it imports {', '.join(scan['refused_globals'])}, which "
            "no fitted estimator needs; it was not read (nothing in it ran)"
        )
    if not scan["globals"]:
        raise ImportRefused(f"{path.name} holds no estimator (the scan found no class in it)")
    import joblib

    try:
        model = joblib.load(path)  # scanned above; the user vouched for it
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ImportRefused(
            f"{path.name} could not be read as a pickle ({type(exc).__name__})"
        ) from None
    source = "joblib" if path.suffix.lower() == ".joblib" else "pickle"
    return LoadedModel(model, source, scan=scan)


def _layers(config: Any) -> Iterator[dict[str, Any]]:
    """Every object with a `class_name` in a Keras config, depth first."""
    if isinstance(config, dict):
        if "class_name" in config:
            yield config
        for value in config.values():
            yield from _layers(value)
    elif isinstance(config, list):
        for value in config:
            yield from _layers(value)


def check_keras_config(config: dict[str, Any], trust: bool = False) -> None:
    """Refuse a Keras config that carries code: a Lambda layer, or (unless `trust`) a class
    from a module outside Keras. Raises ImportRefused naming what it found."""
    for item in _layers(config):
        name = str(item.get("class_name"))
        module = str(item.get("module") or "keras")
        if name in KERAS_CODE_LAYERS:
            raise ImportRefused(
                f"the Keras model has a {name} layer, which carries Python code; it was not "
                "loaded. Replace it with built-in layers or a registered custom layer"
            )
        if not trust and not module.startswith("keras") and module not in ("builtins",):
            raise ImportRefused(
                f"the Keras model uses {module}.{name}, a class from outside Keras; it was not "
                "loaded (pass --trust-pickle if you trust that module)"
            )


def read_keras(path: Path, trust: bool) -> LoadedModel:
    """A `.keras` file: its config checked (`check_keras_config`), then loaded in safe mode."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise ImportRefused(f"{path.name} is not a .keras model file") from None
    check_keras_config(config, trust)
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras's own refusals and parse errors
        raise ImportRefused(
            f"Keras could not load {path.name} safely ({type(exc).__name__})"
        ) from None
    return LoadedModel(model, "keras")
