"""A model that stays "loading" until a test says so: deterministic 503s from a real server.

`gated_artifact` writes a joblib file that, when the server unpickles it, waits for a gate file
to exist and then loads the real estimator. The server process imports this module by name
(it runs with the repository on PYTHONPATH).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import joblib

GATE_TIMEOUT_S = 300.0  # a test that never opens its gate still lets the server go


def load_when_open(gate: str, real_model: str) -> Any:
    """Wait (on the server's loading thread) until `gate` exists, then load `real_model`."""
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never opened {gate}")
        time.sleep(0.02)
    return joblib.load(real_model)


class _Gated:
    def __init__(self, gate: Path, real_model: Path) -> None:
        self.gate, self.real_model = gate, real_model

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return load_when_open, (str(self.gate), str(self.real_model))


def gated_artifact(path: Path, gate: Path, real_model: Path) -> None:
    """Write a joblib file at `path` that loads `real_model` once `gate` exists."""
    joblib.dump(_Gated(gate, real_model), path)
