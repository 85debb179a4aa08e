"""The training backend (TensorFlow under Keras), imported once, quietly, with a clear error.

TensorFlow's native code writes start-up notices straight to file descriptor 2 while it is
imported: absl's "All log messages before absl::InitializeLog()", oneDNN's round-off notice,
CPU-feature hints. Which of them appear depends on the CPU and the build, and
`TF_CPP_MIN_LOG_LEVEL` does not reach the ones printed before absl is initialised. They are
not about the user's run, so the CLI imports TensorFlow with descriptor 2 captured and drops
what it printed, unless the import fails, when the captured text is part of the answer.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator

INSTALL_HINT = (
    "install the pinned training set into the project's .venv with `make install-train` "
    "(the same as `.venv/bin/python -m pip install -r requirements/train.lock`); "
    "scikit-learn models (iris-knn) train without it"
)


class MissingTrainingDependency(RuntimeError):
    """A package that training needs is not installed; the message says what to install."""


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[tempfile.SpooledTemporaryFile[bytes]]:
    """Point file descriptor 2 at a temporary file for the block; yields that file.

    Works for native libraries too, which write to the descriptor, not to `sys.stderr`.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield captured  # type: ignore[misc]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_training_backend() -> None:
    """Import TensorFlow and Keras for training without their native start-up notices.

    Raises:
        MissingTrainingDependency: TensorFlow or Keras is not installed (one-line message).
        Exception: whatever the import raised when a package is installed but broken; the
            captured native output is written to stderr first, since it explains the failure.
    """
    # Quiet the notices that do respect the level (graph-version messages from tf.data).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The trainers feed Keras through tf.data pipelines, so training runs on TensorFlow; the
    # saved .keras files are backend-agnostic and serve on any backend.
    os.environ["KERAS_BACKEND"] = "tensorflow"
    with native_stderr_captured() as captured:
        try:
            for module in ("tensorflow", "keras"):
                importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name in ("tensorflow", "keras"):
                raise MissingTrainingDependency(
                    f"training needs {exc.name}, which is not installed: {INSTALL_HINT}"
                ) from None
            failure: Exception | None = exc
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the captured output
            failure = exc
        else:
            failure = None
        captured.seek(0)
        output = captured.read()
    if failure is not None:
        sys.stderr.write(output.decode(errors="replace"))
        raise failure
