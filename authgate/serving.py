"""How every authgate service runs under uvicorn: one set of server options.

httptools and uvloop (HTTP parsing dominates a small service's cost), no access log (the
services log their decisions), our own logging config, no Server header, and
X-Forwarded-* never believed: a client address is the peer's, whatever a client claims.
"""

from __future__ import annotations

from typing import Any

UVICORN: dict[str, Any] = {
    "http": "httptools",
    "loop": "uvloop",
    "lifespan": "on",
    "access_log": False,
    "log_config": None,
    "server_header": False,
    "proxy_headers": False,
}
