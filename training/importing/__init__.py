"""Bring your own model: turn a fitted scikit-learn (or Keras) model into a served version.

`save_model(model, name, example=X, eval=(X_test, y_test))` from Python, `synergy import
MODEL_FILE --name NAME ...` from a shell (`training.importing.cli`). Both read the model
safely (`safety`), infer its input schema, task and labels (`schema`), make a sample
prediction through the server's own adapter and runtime (stored as the card's replay example),
evaluate it on held-out data when given (`evaluation`) and write the next version into the
models folder atomically (`save`).
"""

from training.importing.errors import ImportRefused
from training.importing.save import ImportResult, import_file, save_model

__all__ = ["ImportRefused", "ImportResult", "import_file", "save_model"]
