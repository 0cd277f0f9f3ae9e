"""`authgate-verifier`: validate the settings, then serve: with the verifier's own server
(verifier/server.py, the default) or under uvicorn (`--server uvicorn`)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from authgate.config import ConfigError, redact_url, to_environ
from authgate.logs import configure_logging
from authgate.serving import UVICORN

from . import server, workers
from .app import create_app
from .settings import OPTIONS, Settings, load_settings

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
        "verifier on http://%s:%d (%s server, %d worker(s)), redis %s, issuer %s",
        settings.host,
        settings.port,
        settings.server,
        settings.workers,
        redact_url(settings.redis_url),
        settings.issuer,
    )
    if settings.server == "protocol":
        sys.exit(serve(settings))
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


def serve(settings: Settings) -> int:
    """The verifier's own server, in this process or in `workers` forked ones."""
    limits = server.Limits(settings.header_timeout, settings.body_timeout)

    def work() -> int:
        return server.run(create_app, settings.host, settings.port, limits,
                          reuse_port=settings.workers > 1)  # fmt: skip

    if settings.workers == 1:
        return work()
    return workers.supervise(settings.workers, work)


if __name__ == "__main__":
    main()
