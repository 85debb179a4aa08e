"""Production monitoring: prediction store, feedback, live accuracy, drift, payload log.

No HTTP here: `app.api.monitoring` is the thin route module over `Monitor`.
"""

from app.monitoring.monitor import Monitor

__all__ = ["Monitor"]
