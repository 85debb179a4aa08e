"""Log set-up: what reaches the operator's log stream."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from app.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    library_levels = {n: logging.getLogger(n).level for n in ("jax", "tensorflow", "absl")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in library_levels.items():
        logging.getLogger(name).setLevel(saved)


def test_library_info_notices_do_not_reach_the_log_but_their_warnings_do(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stdout", stream)
    configure_logging("info")
    # What JAX logs on every start of a machine without a TPU.
    logging.getLogger("jax._src.xla_bridge").info("Unable to initialize backend 'tpu'")
    logging.getLogger("jax._src.xla_bridge").warning("a real warning")
    logging.getLogger("app.service").info("model ready")
    lines = stream.getvalue().splitlines()
    assert not [line for line in lines if "tpu" in line]
    assert any("a real warning" in line for line in lines)
    assert any("model ready" in line for line in lines)
