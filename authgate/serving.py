"""How every authgate service runs under uvicorn: one set of server options.

httptools and uvloop (HTTP parsing dominates a small service's cost), no access log (the
services log their decisions), our own logging config, no Server header, and
X-Forwarded-* never believed: a client address is the peer's, whatever a client claims.

uvicorn has no read deadlines of its own (its keep-alive timer runs only *between*
requests), so one client sending a header byte a minute holds a connection, and enough of
them hold the server (slowloris). `GuardedHttpTools` adds them, as nginx's
`client_header_timeout` does: a request's headers must be complete within `header_timeout`
seconds of its first byte (or of the connection opening), and its body within
`body_timeout` seconds of its headers. The body's is a whole deadline, not nginx's pause
between reads: a byte a second would pass that, and the services take small bodies only.
A connection past either is closed. One timer per connection checks both, so a request
costs two clock reads.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT


class GuardedHttpTools(HttpToolsProtocol):
    header_timeout: ClassVar[float] = DEFAULT_HEADER_TIMEOUT
    body_timeout: ClassVar[float] = DEFAULT_BODY_TIMEOUT
    #: Accept any byte but CR, LF and NUL in header values instead of answering 400.
    lenient_header_values: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.lenient_header_values:
            self.parser.set_dangerous_leniencies(lenient_headers=True)
        self._headers_since: float | None = None  # reading a request's headers since
        self._body_since: float | None = None  # reading a request's body since
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._headers_since = self.loop.time()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._headers_since is None:
            self._headers_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._headers_since = None
        self._body_since = self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_since = None
        super().on_message_complete()

    def _arm(self) -> None:
        interval = min(self.header_timeout, self.body_timeout) / 4
        self._watch = self.loop.call_later(interval, self._check)

    def _check(self) -> None:
        if self.transport.is_closing():
            return
        now = self.loop.time()
        headers, body = self._headers_since, self._body_since
        if (headers is not None and now - headers > self.header_timeout) or (
            body is not None and now - body > self.body_timeout
        ):
            self.transport.close()  # a slow client: nothing it sent is answered
            return
        self._arm()


class LenientGuardedHttpTools(GuardedHttpTools):
    """For the verifier, which must answer nginx 2xx, 401 or 403 whatever a client put in
    the Authorization or Cookie header nginx relays: a control character there is a bad
    credential (401), not a bad request (400, which nginx turns into a 500)."""

    lenient_header_values = True


def configure(header_timeout: float, body_timeout: float) -> None:
    """Set the deadlines for this process (each worker calls it as it builds its app)."""
    GuardedHttpTools.header_timeout = header_timeout
    GuardedHttpTools.body_timeout = body_timeout


UVICORN: dict[str, Any] = {
    "http": "authgate.serving:GuardedHttpTools",
    "loop": "uvloop",
    "lifespan": "on",
    "access_log": False,
    "log_config": None,
    "server_header": False,
    "proxy_headers": False,
}
