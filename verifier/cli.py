"""`authgate-verifier`: validate the settings, then serve under uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from authgate.config import ConfigError, redact_url, to_environ
from authgate.logs import configure_logging
from authgate.serving import UVICORN

from .settings import OPTIONS, load_settings

log = logging.getLogger("authgate.verifier")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"authgate-verifier: {exc}", file=sys.stderr)
        sys.exit(2)
    # Workers build their own settings from the environment: hand them the flags too.
    os.environ.update(to_environ(OPTIONS, settings))
    configure_logging(settings.log_level)
    log.info(
        "verifier on http://%s:%d (%d worker(s)), redis %s, issuer %s",
        settings.host,
        settings.port,
        settings.workers,
        redact_url(settings.redis_url),
        settings.issuer,
    )
    uvicorn.run(
        "verifier.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        **{**UVICORN, "http": "authgate.serving:LenientGuardedHttpTools"},
        date_header=False,
        # Longer than nginx's upstream keepalive_timeout (60 s), so nginx closes first
        # and never sends on a connection uvicorn has just dropped.
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
