"""Production monitoring: prediction store, feedback, live accuracy, drift, payload log.

No HTTP here: `app.api.monitoring` is the thin route module over `Monitor`.

`Monitor` is imported on first use: the store's writer process imports this package's
`writer`, `store` and `profile` modules, and must not pay for the monitor's imports (SciPy,
Prometheus) at every start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.monitoring.monitor import Monitor

__all__ = ["Monitor"]


def __getattr__(name: str) -> Any:
    if name == "Monitor":
        from app.monitoring.monitor import Monitor

        return Monitor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
