"""Container health check: ``python healthcheck.py /readyz`` exits 0 on a 2xx answer and
otherwise prints the answer (which checks failed) to stderr.

Asks Careline's webhook server on this host (``CARELINE_WEBHOOK_PORT``, default 8443), with
the standard library only: the image has no curl.
"""

from __future__ import annotations

import http.client
import os
import sys


def main(argv: list[str]) -> int:
    """Exit 0 if ``GET <path>`` answers 2xx within 4 seconds, else 1 (with the reason)."""
    path = argv[1] if len(argv) > 1 else "/healthz"
    port = int(os.environ.get("CARELINE_WEBHOOK_PORT", "8443"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        status, body = response.status, response.read(2000)
    except OSError as exc:
        sys.stderr.write(f"{path}: {type(exc).__name__}\n")
        return 1
    finally:
        conn.close()
    if not 200 <= status < 300:
        # /readyz names the failed checks and why (exception types only, no secrets).
        sys.stderr.write(f"{path}: HTTP {status} {body.decode('utf-8', 'replace')}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
