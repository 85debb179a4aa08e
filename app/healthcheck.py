"""`python -m app.healthcheck`: exit 0 when this container's server is ready, else 1.

For Docker's HEALTHCHECK: the slim image has no curl, and the standard library is enough.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """GET /health/ready on the local port; 0 on 200."""
    port = os.environ.get("SYNERGY_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
