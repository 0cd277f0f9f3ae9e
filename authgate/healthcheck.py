"""`authgate-healthcheck [URL]`: exit 0 when URL answers 2xx within 3 s, else 1.

Container health checks run it (the slim image has no curl). The URL defaults to
`AUTHGATE_HEALTHCHECK_URL`, else the service's own `/readyz` on `AUTHGATE_PORT`.
Standard library only: it must start fast and need nothing that can be missing.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

TIMEOUT = 3.0


def target(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    if argv:
        return argv[0]
    if environ.get("AUTHGATE_HEALTHCHECK_URL"):
        return environ["AUTHGATE_HEALTHCHECK_URL"]
    return f"http://127.0.0.1:{environ.get('AUTHGATE_PORT', '9181')}/readyz"


def main(argv: Sequence[str] | None = None) -> int:
    url = target(sys.argv[1:] if argv is None else argv, os.environ)
    if not url.startswith(("http://", "https://")):
        print(f"authgate-healthcheck: {url!r} is not an http(s) URL", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:  # noqa: S310 - checked above
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"authgate-healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"authgate-healthcheck: {url}: HTTP {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
