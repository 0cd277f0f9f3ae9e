"""The `kong` object `serve` hands to plugins: the slice of Kong's PDK our plugins call.

Python-style, as kong-pdk's `--no-lua-style`: values are returned, errors raise. Phases run
on a worker thread (or, as `<phase>_async`, on serve's event loop) with the request's
`Exchange` to themselves, so the calls here are plain reads and writes of it and never
block. A PDK function missing here fails loudly (AttributeError), never silently: add it
here when a plugin needs it, to the same documented shape as Kong's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Exchange:
    """One request as the plugins see it, and what they decide about it."""

    method: str
    path: str
    raw_query: str
    headers: list[tuple[str, str]]  # names lower-cased, in arrival order
    body: bytes  # read whole before the plugins run (serve streams only plugin-free routes)
    client_ip: str
    route: dict[str, Any]
    service: dict[str, Any]
    shared: dict[str, Any] = field(default_factory=dict)
    exit: tuple[int, bytes, dict[str, Any]] | None = None
    status: int = 0
    source: str = "service"  # "service" | "exit" | "error", as kong.response.get_source
    request_line: str = ""  # nginx's $request: "METHOD target HTTP/x.y", as received
    buffered: bool = True  # ngx.ctx.buffered_proxying: False skips the response phase
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""


def multi_map(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Kong's header tables: one string per name, a list where a name repeats."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name not in out:
            out[name] = value
        elif isinstance(out[name], list):
            out[name].append(value)
        else:
            out[name] = [out[name], value]
    return out


class _Request:
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def get_method(self) -> str:
        return self._ex.method

    def get_path(self) -> str:
        return self._ex.path

    def get_raw_query(self) -> str:
        return self._ex.raw_query

    def get_headers(self, max_headers: int | None = None) -> dict[str, Any]:
        return multi_map(self._ex.headers)

    def get_raw_body(self, max_allowed_file_size: int | None = None) -> bytes:
        # Read whole before the plugins run (bounded by --client-max-body-size), so no
        # body is "in a file" here; the plugin checks the size itself.
        return self._ex.body


class _Nginx:
    """kong.nginx as Kong exposes it to external plugins (plugin_servers/plugin.lua)."""

    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def get_var(self, name: str) -> str | None:
        if name != "request":
            raise AttributeError(f"serve offers only $request, not ${name}")
        return self._ex.request_line

    def set_ctx(self, key: str, value: Any) -> None:
        if key != "buffered_proxying":
            raise AttributeError(f"serve offers only ngx.ctx.buffered_proxying, not {key}")
        self._ex.buffered = bool(value)


class _Response:
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def exit(self, status: int, body: bytes | str | None = None, headers: Any = None) -> None:
        data = body.encode() if isinstance(body, str) else (body or b"")
        self._ex.exit = (int(status), data, dict(headers or {}))
        self._ex.source = "exit"

    def get_status(self) -> int:
        return self._ex.status

    def get_source(self) -> str:
        return self._ex.source

    def get_headers(self, max_headers: int | None = None) -> dict[str, Any]:
        return multi_map(self._ex.response_headers)


class _ServiceResponse:
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def get_raw_body(self) -> bytes:
        return self._ex.response_body


class _Service:
    def __init__(self, ex: Exchange) -> None:
        self.response = _ServiceResponse(ex)


class _Router:
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def get_route(self) -> dict[str, Any]:
        return self._ex.route

    def get_service(self) -> dict[str, Any]:
        return self._ex.service


class _Client:
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def get_ip(self) -> str:
        return self._ex.client_ip

    def get_consumer(self) -> dict[str, Any] | None:
        return None  # no authentication plugin runs in serve: nginx authenticates


class _Shared:
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def get(self, key: str) -> Any:
        return self._ex.shared.get(key)

    def set(self, key: str, value: Any) -> None:
        self._ex.shared[key] = value


class _Ctx:
    def __init__(self, ex: Exchange) -> None:
        self.shared = _Shared(ex)


class Kong:
    """`kong` as a phase method receives it."""

    def __init__(self, ex: Exchange) -> None:
        self.request = _Request(ex)
        self.response = _Response(ex)
        self.service = _Service(ex)
        self.router = _Router(ex)
        self.client = _Client(ex)
        self.ctx = _Ctx(ex)
        self.nginx = _Nginx(ex)
