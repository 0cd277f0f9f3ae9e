"""The two hosts plugins/idempotency.py runs in, behind one send-a-request interface.

- `ServeHost`: `authgate-gateway serve` through its real entry point, the plugin on a
  `/api/` write route (`gateway_harness.kong_yml`); the route's prefix is stripped, so the
  upstream sees the same path as through the other host.
- `PluginServerHost`: kong-pdk's real plugin server, driven over its socket as Kong drives
  it (`kong_rpc.MiniKong`).

A test names the path the upstream is to see and reads back an `Answer`, whichever host
ran the request; `variant` starts the same host with another plugin config.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pytest

from ..gateway_harness import GatewayProcess, kong_yml
from ..kong_rpc import MiniKong, PluginServer, Request

Headers = Mapping[str, str] | Mapping[bytes, bytes]


@dataclass(frozen=True)
class Answer:
    """What the client received, with httpx.Response's names for what tests read."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Host(Protocol):
    name: str

    def send(self, method: str, path: str, body: bytes, headers: Headers) -> Answer: ...

    def variant(
        self, plugin: Mapping[str, Any], upstream: str | None = None, **service: Any
    ) -> AbstractContextManager[Host]: ...


def _text(value: str | bytes) -> str:
    # Header bytes as a server receives them (RFC 9110 §5.5: octets, read as Latin-1).
    return value.decode("latin-1") if isinstance(value, bytes) else value


class ServeHost:
    name = "serve"
    PREFIX = "/api"  # kong_yml's write route; strip_path hands the upstream the rest

    def __init__(
        self,
        upstream: str,
        plugin: Mapping[str, Any],
        tmp: pytest.TempPathFactory,
        **service: Any,
    ) -> None:
        self.upstream, self._tmp = upstream, tmp
        self.process = GatewayProcess(kong_yml(upstream, plugin, **service), tmp.mktemp("gw"))

    def send(self, method: str, path: str, body: bytes, headers: Headers) -> Answer:
        # One client per request, so concurrent sends from threads share nothing.
        with httpx.Client(base_url=self.process.url, timeout=30) as client:
            answer = client.request(method, self.PREFIX + path, content=body, headers=headers)
        return Answer(answer.status_code, answer.headers, answer.content)

    @contextmanager
    def variant(
        self, plugin: Mapping[str, Any], upstream: str | None = None, **service: Any
    ) -> Iterator[ServeHost]:
        other = ServeHost(upstream or self.upstream, plugin, self._tmp, **service)
        try:
            yield other
        finally:
            other.stop()

    def stop(self) -> None:
        self.process.stop()


class PluginServerHost:
    name = "pluginserver"

    def __init__(self, server: PluginServer, upstream: str, plugin: Mapping[str, Any]) -> None:
        self.server, self.upstream = server, upstream
        self.kong = MiniKong(server, dict(plugin), upstream)

    def send(self, method: str, path: str, body: bytes, headers: Headers) -> Answer:
        path, _, query = path.partition("?")
        fields = {_text(k): _text(v) for k, v in headers.items()}
        status, got, content = self.kong.handle(Request(method, path, fields, body, query))
        pairs: list[tuple[str, str]] = []
        for name, value in got.items():
            # kong.response.exit takes a list for a header sent more than once.
            values = value if isinstance(value, list) else [value]
            pairs += [(name, str(v)) for v in values]
        return Answer(status, httpx.Headers(pairs), content)

    @contextmanager
    def variant(
        self, plugin: Mapping[str, Any], upstream: str | None = None, **service: Any
    ) -> Iterator[PluginServerHost]:
        # A new StartInstance on the same server, as Kong does for another plugin entity.
        # Service settings (retries) are Kong's proxying, which MiniKong does not model:
        # it sends each request once.
        yield PluginServerHost(self.server, upstream or self.upstream, plugin)
