"""The verifier's own HTTP/1.1 server: an asyncio protocol on httptools, run on uvloop.

nginx asks the same question on every request, so the server around the decision was
most of its cost under uvicorn (ASGI scope and message dicts, a task per request). Here
a parsed subrequest goes straight to `VerifierApp.decide`; when the token and session
are cached the answer's bytes are written from `data_received`, with no task and no
await. Only a decision that needs I/O (a new token, a session not cached) becomes a task.

What uvicorn gave, kept: keep-alive (HTTP/1.1 by default, HTTP/1.0 on request),
pipelined requests answered in order, read deadlines (`header_timeout`, `body_timeout`,
like nginx's `client_header_timeout`) and an idle keep-alive timeout, a bound on header
bytes, malformed requests answered 400 and closed, graceful shutdown (stop accepting,
finish what was asked, close idle connections) and `--workers N`, each worker a process
listening on the same port with SO_REUSEPORT (verifier/workers.py).

Nothing nginx relays can turn into a 500 (which is what `auth_request` makes of any
status but 2xx, 401 and 403): header values are read leniently (a control character in
a cookie is a bad credential, answered 401 by the decision), and on `/verify` headers
past the limit are a credential too large to read (401). A 400 goes only to a peer that
does not speak HTTP, which nginx never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import httptools

from .answers import Answer, closing, head
from .app import Pending, VerifierApp
from .asgi import Message

log = logging.getLogger("authgate.verifier")

#: Sent to a peer whose bytes are not HTTP/1.x; the connection is closed after it.
BAD_REQUEST = closing(head(400, [(b"content-length", b"0")]))
#: What a request's headers may add up to (name, value and 4 bytes each, and the URL):
#: above nginx's default `large_client_header_buffers` (4 x 8k), so never met through a
#: default nginx.
MAX_HEADER_BYTES = 64 * 1024
#: The verifier reads no body (nginx sends none); a larger one closes the connection.
MAX_BODY_BYTES = 64 * 1024
#: What one read may bring (uvloop reads up to 256 KiB at a time).
READ_SIZE = 256 * 1024
#: Requests parsed ahead of their answers on one connection before reading pauses.
MAX_PIPELINED = 32
#: Idle keep-alive connections are closed after this many seconds: longer than nginx's
#: upstream `keepalive_timeout` (60 s), so nginx closes first and never sends on a
#: connection the verifier has just dropped.
KEEP_ALIVE_TIMEOUT = 75.0


class Limits(NamedTuple):
    header_timeout: float
    body_timeout: float
    keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT
    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = MAX_BODY_BYTES


class Parsed(NamedTuple):
    path: bytes  # the request target as sent (path and query)
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    oversized: bool


class Connection(asyncio.Protocol):
    """One client connection: parse, decide, answer in order.

    The hot path reads no clock: deadlines are judged by the server's sweep, from how
    long a connection has stayed in one state (its `progress` count unchanged).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.app = server.app
        self.limits = server.limits
        self._max_header_bytes = server.limits.max_header_bytes
        #: Bytes of one request head past which the connection is dropped unanswered:
        #: the limit plus one read's worth, so that a head that merely crosses the limit
        #: is still read to its end and answered.
        self._runaway = server.limits.max_header_bytes + READ_SIZE
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # A control character in a header value reaches the decision (a 401), not a 400.
        self.parser.set_dangerous_leniencies(lenient_headers=True)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0  # this request's URL and header names and values
        self.head_bytes = 0  # bytes received while reading this request's head
        self.body_bytes = 0
        self.waiting: deque[Parsed] = deque()  # parsed, not answered yet (pipelining)
        self.busy = False  # an answer is being settled (I/O)
        self.paused = False
        self.draining = False  # shutting down: close after the answers owed
        self.reading = False  # between a request's first byte and its end
        self.in_head = True  # reading a request's head (also before its first byte)
        #: Bumped at each request's start, head end and end; the sweep times states by it.
        self.progress = 0
        self.seen: tuple[int, float] = (0, server.loop.time())  # the sweep's last look

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.forget(self)
        self.waiting.clear()

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
            if self.head_bytes > self._runaway and self.transport is not None:
                self.transport.close()  # a head without end: nothing to answer
                return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._bad()

    # --- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.reading = self.in_head = True
        self.progress += 1

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = self.body_bytes = 0
        self.progress += 1

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.limits.max_body_bytes and self.transport is not None:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.reading = False
        self.progress += 1
        url, keep_alive = self.url, self.parser.should_keep_alive()
        oversized = self.header_bytes > self._max_header_bytes
        if self.busy or self.waiting:
            self.waiting.append(Parsed(url, self.headers, keep_alive, oversized))
            if len(self.waiting) >= MAX_PIPELINED and not self.paused:
                self.paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]
        elif url == b"/verify" and not oversized:  # the hot path, inline
            answer = self.app.decide(self.headers)
            if answer.__class__ is Pending:
                self.busy = True
                task = self.server.loop.create_task(self._settle(answer, keep_alive))
                self.server.track(task)
            elif keep_alive and not self.draining and not self.transport.is_closing():  # type: ignore[union-attr]
                self.transport.write(answer.raw)  # type: ignore[union-attr]
            else:
                self._send(answer.raw, keep_alive)  # type: ignore[union-attr]
        else:
            self._handle(Parsed(url, self.headers, keep_alive, oversized))

    # --- answering ----------------------------------------------------------------

    def _handle(self, request: Parsed) -> None:
        if request.path.partition(b"?")[0] == b"/verify":
            if request.oversized:
                answer: Answer | Pending = self.app.oversized(self.limits.max_header_bytes)
            else:
                answer = self.app.decide(request.headers)
            if not isinstance(answer, Pending):
                self._send(answer.raw, request.keep_alive)
                return
            coroutine = self._settle(answer, request.keep_alive)
        else:
            coroutine = self._operations(request)
        self.busy = True
        self.server.track(self.server.loop.create_task(coroutine))

    async def _settle(self, pending: Pending, keep_alive: bool) -> None:
        try:
            answer = await self.app.settle(pending)
        except Exception:  # the decision's own failure: never leave nginx waiting
            log.exception("auth error: unexpected failure deciding a subrequest")
            self._after(head(500, [(b"content-length", b"0")]), False)
            return
        self._after(answer.raw, keep_alive)

    async def _operations(self, request: Parsed) -> None:
        """`/healthz`, `/readyz`, `/metrics` and 404s: the ASGI app's own handlers."""
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        path = request.path.partition(b"?")[0]
        scope = {"type": "http", "path": path.decode("latin-1"), "method": "GET",
                 "headers": request.headers}  # fmt: skip
        try:
            await self.app(scope, receive, send)
            start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
            headers = [*start["headers"], (b"content-length", str(len(body)).encode())]
            raw = head(start["status"], headers) + body
        except Exception:
            log.exception("unexpected failure answering %s", scope["path"])
            raw, request = (
                head(500, [(b"content-length", b"0")]),
                request._replace(keep_alive=False),
            )
        self._after(raw, request.keep_alive)

    def _after(self, raw: bytes, keep_alive: bool) -> None:
        """An answer that needed I/O is ready: send it, then what was waiting behind it."""
        self.busy = False
        self._send(raw, keep_alive)
        while self.waiting and not self.busy and self.transport is not None:
            self._handle(self.waiting.popleft())
        if self.paused and len(self.waiting) < MAX_PIPELINED // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _send(self, raw: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not keep_alive or (self.draining and not self.waiting):
            transport.write(closing(raw))
            transport.close()
            return
        transport.write(raw)

    def _bad(self) -> None:
        """Bytes that are not HTTP/1.x: 400, and the connection closed."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    # --- the server's rounds ------------------------------------------------------

    def overdue(self, now: float) -> bool:
        """Past a deadline by the state it has been in since the sweep last saw it move:
        a head (header_timeout), a body (body_timeout), idle (keep_alive_timeout)."""
        mark, since = self.seen
        if mark != self.progress:
            self.seen = (self.progress, now)
            return False
        if self.busy or self.waiting:
            return False  # the verifier owes the answer: no deadline on the client
        limits, stuck = self.limits, now - since
        if self.in_head:
            return stuck > limits.header_timeout
        if self.reading:
            return stuck > limits.body_timeout
        return stuck > limits.keep_alive_timeout

    def idle(self) -> bool:
        """Nothing owed and no request half-read: safe to close at shutdown."""
        return not self.busy and not self.waiting and not self.reading

    def drain(self) -> None:
        self.draining = True
        if self.idle() and self.transport is not None:
            self.transport.close()


class Server:
    """Every connection of one worker, their deadlines, and shutdown."""

    def __init__(self, app: VerifierApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._draining = False
        self._quiet = asyncio.Event()  # set once draining and nothing is left

    def protocol(self) -> Connection:
        return Connection(self)

    def track(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._check_quiet()

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._check_quiet()

    def _check_quiet(self) -> None:
        if self._draining and not self.connections and not self.tasks:
            self._quiet.set()

    async def listen(self, host: str, port: int, reuse_port: bool) -> None:
        self._listener = await self.loop.create_server(
            self.protocol, host, port, reuse_port=reuse_port or None, backlog=2048
        )
        self._sweep()

    def _sweep(self) -> None:
        """One timer for every connection: close those past a deadline."""
        now = self.loop.time()
        for connection in [c for c in self.connections if c.overdue(now)]:
            if connection.transport is not None:
                connection.transport.close()  # a slow client: nothing it sent is answered
        limits = self.limits
        interval = min(limits.header_timeout, limits.body_timeout) / 4
        self._sweeper = self.loop.call_later(interval, self._sweep)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; answer what was asked (within `grace` seconds); close."""
        if self._listener is not None:
            self._listener.close()
        self._draining = True
        for connection in list(self.connections):
            connection.drain()
        self._check_quiet()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), grace)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._listener is not None:
            await self._listener.wait_closed()


def run(
    app_factory: Callable[[], VerifierApp], host: str, port: int, limits: Limits,
    *, reuse_port: bool = False, grace: float = 10.0,
) -> int:  # fmt: skip
    """Serve until SIGTERM or SIGINT, in this process, on uvloop. Returns an exit code."""
    import signal

    import uvloop

    async def serve() -> int:
        app = app_factory()
        try:
            await app.ops.startup()
        except Exception as exc:
            log.error("verifier could not start: %s", exc)
            return 1
        server = Server(app, limits)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await server.listen(host, port, reuse_port)
        except OSError as exc:
            log.error("verifier cannot listen on %s:%d: %s", host, port, exc)
            await app.ops.shutdown()
            return 1
        await stop.wait()
        await server.shutdown(grace)
        await app.ops.shutdown()
        return 0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve())
