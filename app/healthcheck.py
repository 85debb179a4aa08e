"""`python -m app.healthcheck`: exit 0 when this container's server is ready, else 1.

For Docker's HEALTHCHECK: the slim image has no curl, and the standard library is enough.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

USAGE = """usage: python -m app.healthcheck [--help]

Exit 0 when the server on this machine is ready (GET /health/ready answers 200 within 2 s),
else print why on stderr and exit 1. For container health checks (Docker HEALTHCHECK).

Environment:
  SYNERGY_PROBE_PORT  the probe listener's port, asked first when set (docs/security.md)
  SYNERGY_PORT        the server's port [default: 8000]"""


def main(argv: list[str] | None = None) -> int:
    """GET /health/ready on the local port; 0 on 200, 1 otherwise, 2 on a wrong argument."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--help"], ["-h"]):
        print(USAGE)
        return 0
    if args:
        print(f"error: unexpected argument {args[0]!r}; see --help", file=sys.stderr)
        return 2
    # The probe listener when there is one: a flood of idle connections on the main port
    # cannot make it fail.
    port = os.environ.get("SYNERGY_PROBE_PORT") or os.environ.get("SYNERGY_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
