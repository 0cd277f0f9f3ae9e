"""`authgate-gateway serve`: a plain-ASGI proxy that routes like Kong and hosts our plugins.

Routes with no plugin stream both ways (the body is never held). Every body is bounded by
`client_max_body_size` (gateway/body.py: 413 before reading a declared length over it, or
the moment a chunked body passes it). Where a plugin applies, the request body is read
for it and the response is buffered so its `response` phase can read it, as Kong buffers
for external plugins with a response phase (unless a plugin unset `buffered_proxying`).
Upstream connections are pooled and kept alive by one aiohttp client session.
Gateway-made answers use Kong's bodies (`{"message": "no Route matched with those
values"}`, 502, 504) and mark the response's source "error", which is how a plugin tells
a gateway failure from an upstream answer.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gateway.body import DEFAULT_CLIENT_MAX_BODY_SIZE, Body, TooLarge, parse_size, too_large
from gateway.host import PluginHost, entity
from gateway.model import Config, Route, Service
from gateway.pdk import Exchange
from gateway.plugins import DEFAULT_DIR
from gateway.router import Match, Router
from gateway.uri import BadPath

log = logging.getLogger("authgate.gateway")

Scope = dict[str, Any]
# RFC 9110 §7.6.1: connection-specific fields never cross a proxy.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
HOP_BY_HOP_BYTES = {name.encode() for name in HOP_BY_HOP}
# The request headers serve itself reads, found in one pass over the request's headers.
READ_HEADERS = frozenset({b"content-length", b"host", b"transfer-encoding"})


class Balancer:
    """Weighted round robin over an upstream's targets; a plain host is its own target."""

    def __init__(self, config: Config) -> None:
        self.cycles: dict[str, Any] = {}
        for upstream in config.upstreams:
            ring = [f"{t.host}:{t.port}" for t in upstream.targets for _ in range(t.weight)]
            self.cycles[upstream.name] = itertools.cycle(ring) if ring else None

    def pick(self, service: Service) -> str | None:
        if service.host not in self.cycles:
            return f"{service.host}:{service.port}"
        ring = self.cycles[service.host]
        return None if ring is None else str(next(ring))


class Gateway:
    def __init__(
        self,
        config: Config,
        plugins_dir: Path = DEFAULT_DIR,
        client_max_body_size: int = parse_size(DEFAULT_CLIENT_MAX_BODY_SIZE),
    ) -> None:
        self.body_limit = client_max_body_size
        self.router = Router(config)
        self.plugins = PluginHost(config, plugins_dir)
        self.balancer = Balancer(config)
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[str, aiohttp.ClientTimeout] = {}
        self._entities: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        """One pooled keep-alive client, made in the server's event loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                trust_env=False,
            )
        return self._session

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = Body(receive, self.body_limit)
        seen = _read_headers(scope)
        try:
            body.check_declared(seen.get(b"content-length"))
        except TooLarge:  # nginx answers before routing, and reads none of the body
            await _send(send, *too_large(self.body_limit))
            return
        host = seen.get(b"host")
        server_port = (scope.get("server") or ("", None))[1]
        # The path as received: `scope["path"]` is already decoded once (ASGI), and
        # decoding it again for routing let `%252e%252e` climb out of a prefix (issue 12).
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        try:
            path = raw_path.split(b"?", 1)[0]
            match = self.router.match(scope["method"], host, path, server_port)
        except BadPath as exc:
            log.info("gateway: refused a request path: %s", exc)
            await _answer(send, exc.status, {"message": "Bad request"})
            return
        if match is None:
            await _answer(send, 404, {"message": "no Route matched with those values"})
            return
        chain = self.plugins.chain(match.route)
        if not chain:
            await self.stream(scope, body, send, match, seen)
            return
        try:
            data = await body.read()
        except TooLarge:
            await _send(send, *too_large(self.body_limit))
            return
        ex = Exchange(
            method=scope["method"],
            path=match.path,
            raw_query=scope.get("query_string", b"").decode("latin-1"),
            headers=[
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
            ],
            body=data,
            client_ip=(scope.get("client") or ("", 0))[0],
            route=self.entity("route", match.route),
            service=self.entity("service", match.service),
            request_line=_request_line(scope),
        )
        await self.plugins.run("access", chain, ex)
        if ex.exit is None and not ex.buffered:
            # A plugin unset buffering (the idempotency plugin, for a request it stores
            # nothing of): no response phase reads the answer, so it streams, as in Kong.
            ex.status = await self.stream(scope, body, send, match, seen, ex.body)
            await self.plugins.run("log", chain, ex, stop_on_exit=False)
            return
        if ex.exit is None:
            await self.buffered(scope, ex, match)
            # Kong 3.9 runs the response phase after any buffered answer, also when it (not
            # the upstream) answered: then get_source() is "error" (kong/init.lua
            # Kong.response, Kong.handle_error). A plugin that unset buffering skips it.
            if ex.buffered:
                await self.plugins.run("response", chain, ex)
        if ex.exit is not None:  # a plugin ended the request (or replaced the answer)
            ex.status, ex.response_body, extra = ex.exit
            ex.response_headers = [(k.lower(), str(v)) for k, v in extra.items()]
        await _send(send, ex.status, ex.response_headers, ex.response_body)
        # After the client has its answer, as Kong runs the log phase.
        await self.plugins.run("log", chain, ex, stop_on_exit=False)

    def entity(self, kind: str, item: Route | Service) -> dict[str, Any]:
        """`host.entity`, worked out once per route or service (a UUIDv5 costs more than a
        lookup); each request gets its own copy to hand to plugins."""
        known = self._entities.get((kind, item.name))
        if known is None:
            known = self._entities[(kind, item.name)] = entity(kind, item)
        return dict(known)

    async def buffered(self, scope: Scope, ex: Exchange, match: Match) -> None:
        tries = 1 + max(0, match.service.retries)
        for attempt in range(tries):
            try:
                async with self.forward(scope, match, ex.body) as response:
                    ex.status = response.status
                    ex.response_headers = _forwardable(response.raw_headers)
                    ex.response_body = await response.read()
                return
            except aiohttp.ClientConnectorError as exc:
                # Nothing reached the upstream: the next try (or target) is safe.
                if attempt + 1 < tries:
                    continue
                failure: Exception = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = exc
            ex.status, ex.source, body = _failure(failure, match)
            ex.response_headers = [("content-type", "application/json; charset=utf-8")]
            ex.response_body = json.dumps(body).encode()
            return

    async def stream(
        self,
        scope: Scope,
        body: Body,
        send: Any,
        match: Match,
        seen: dict[bytes, str],
        content: bytes | None = None,
    ) -> int:
        """Proxies with the answer streamed; the request body too, unless already read
        (`content`: then a connection failure is retried, as `buffered` does). Returns the
        status sent."""
        sent: Any = content
        tries = 1 + max(0, match.service.retries) if content is not None else 1
        if content is None:
            has_body = seen.get(b"content-length") not in (None, "0") or seen.get(
                b"transfer-encoding"
            )
            sent = body.chunks() if has_body else b""
        started = False
        for attempt in range(tries):
            try:
                async with self.forward(scope, match, sent) as response:
                    headers = [
                        (k.encode(), v.encode()) for k, v in _forwardable(response.raw_headers)
                    ]
                    start = {"type": "http.response.start", "status": response.status}
                    await send({**start, "headers": headers})
                    started = True
                    async for chunk in response.content.iter_any():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                    return int(response.status)
            except aiohttp.ClientConnectorError as exc:
                if attempt + 1 < tries:
                    continue  # nothing reached the upstream: the next try is safe
                failure: Exception = exc
            except (aiohttp.ClientError, TimeoutError, TooLarge) as exc:
                if started:
                    raise  # mid-body: all a proxy can do is drop the connection
                if body.exceeded:  # aiohttp wraps what the body iterator raised
                    # The upstream got a request cut off before its end, never a whole one.
                    log.info("gateway: request body over %d bytes refused", self.body_limit)
                    await _send(send, *too_large(self.body_limit))
                    return 413
                failure = exc
        status, _, problem = _failure(failure, match)
        await _answer(send, status, problem)
        return status

    def forward(self, scope: Scope, match: Match, content: Any) -> Any:
        """The upstream request for `match`, as an aiohttp response context."""
        service = match.service
        target = self.balancer.pick(service)
        if target is None:
            raise aiohttp.ClientConnectionError("upstream has no targets with weight")
        url = f"{service.protocol}://{target}{match.upstream_path}"
        if query := scope.get("query_string", b""):
            url += "?" + query.decode("latin-1")
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.lower() not in HOP_BY_HOP_BYTES
        )
        if not match.route.preserve_host:
            default_port = {"http": 80, "https": 443}[service.protocol]
            host = target.removesuffix(f":{default_port}")
            headers["Host"] = host
        client = (scope.get("client") or ("", 0))[0]
        forwarded = headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
        headers["X-Forwarded-Proto"] = scope.get("scheme", "http")
        headers["X-Real-IP"] = client
        timeout = self._timeouts.get(service.name)
        if timeout is None:  # one per service, made once
            timeout = self._timeouts[service.name] = aiohttp.ClientTimeout(
                total=None,
                sock_connect=service.connect_timeout / 1000,
                sock_read=service.read_timeout / 1000,
            )
        return self.session.request(
            scope["method"],
            URL(url, encoded=True),
            headers=headers,
            data=content,
            timeout=timeout,
            allow_redirects=False,
            auto_decompress=False,
        )

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                self.plugins.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _failure(exc: Exception, match: Match) -> tuple[int, str, dict[str, str]]:
    log.warning("gateway: upstream of service %s failed: %r", match.service.name, exc)
    if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ClientConnectorError):
        return 504, "error", {"message": "The upstream server is timing out"}
    return 502, "error", {"message": "An invalid response was received from the upstream server"}


def _forwardable(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [
        (k.decode("latin-1").lower(), v.decode("latin-1"))
        for k, v in raw
        if k.lower().decode("latin-1") not in HOP_BY_HOP
    ]


def _request_line(scope: Scope) -> str:
    """nginx's `$request` for this request: method, target as received, protocol."""
    target = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    version = scope.get("http_version", "1.1")
    return f"{scope['method']} {target.decode('latin-1')} HTTP/{version}"


def _read_headers(scope: Scope) -> dict[bytes, str]:
    """The first value of each of READ_HEADERS the request has."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        key = key.lower()
        if key in READ_HEADERS and key not in found:
            found[key] = value.decode("latin-1")
    return found


async def _answer(send: Any, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await _send(send, status, [("content-type", "application/json; charset=utf-8")], data)


async def _send(send: Any, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k != "content-length"]
    headers.append(("content-length", str(len(body))))
    encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})
