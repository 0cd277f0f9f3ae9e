"""`python -m examples.members [--host H] [--port P] [--db FILE] ...`: exit 2 on a bad
setting (every problem listed), 1 when the store cannot be opened."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Sequence

import uvicorn

from .app import create_app
from .settings import SettingsError, load, redact_url
from .store import Store

log = logging.getLogger("members")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load(sys.argv[1:] if argv is None else argv, os.environ)
    except SettingsError as exc:
        print(f"members: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # aiormq logs every failed reconnection as an error, and aio-pika warns about the same
    # attempt: one line per attempt is enough.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
    store = Store(settings.db)
    try:
        store.open()
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        print(f"members: cannot open {settings.db}: {exc}", file=sys.stderr)
        return 1
    log.info("members in %s; user.deleted from %s on %s", settings.db, settings.exchange,
             redact_url(settings.amqp_url))  # fmt: skip
    try:
        config = uvicorn.Config(
            create_app(settings, store), host=settings.host, port=settings.port, lifespan="on"
        )
        server = uvicorn.Server(config)
        server.run()
    finally:
        store.close()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
