"""How every authgate service logs: one line per record to stderr, timestamped, with the
logger's name (`authgate.verifier`, `authgate.issuer`, `authgate.gateway`, …), and the
level from the service's settings for authgate's own loggers only."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(format=FORMAT)
    logging.getLogger("authgate").setLevel(level)
