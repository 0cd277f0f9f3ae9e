"""Kong 3.9.1's `traditional_compatible` router for the supported subset, as Kong computes it.

- **Split** (kong/router/transform.lua:700-756): a route whose paths mix regexes and
  prefixes of different lengths becomes one route per group (all its regexes; each prefix
  length), the first keeping the route's id, the others `uuid5(7f145bf9-…, id#n)`.
- **Priority** (transform.lua:558-667): a 64-bit number, highest first. Kong shifts the
  field-count weight by 61 and `regex_priority` by 19 through `lshift_uint64`, which
  rebinds its argument instead of filling the uint64 (transform.lua:456-465), so both are
  shifted as LuaJIT 32-bit numbers: the weight lands in bits 29-31, `regex_priority` is
  taken modulo 2^32 and sign-extends when bit 31 is set. The plain-hosts bit (60) and the
  regex bit (51) are real 64-bit constants, so they outrank any number of fields.
- **Ties** go to the higher route id (the ATC router keeps matchers in a map keyed by
  (priority, id) and walks it backwards). A route without `id` gets Kong's declarative id,
  `uuid5(uuid5(fd02801f-…, "routes"), name)` (kong/db/schema/others/declarative_config.lua:
  544-556, 636-640).
- **Matching** (transform.lua:359-400): methods exactly; hosts as written, case-sensitive,
  `*.x` a suffix and `x.*` a prefix, a `:port` compared with the Host header's port (else
  the port the request came in on, kong/router/fields.lua:129-137); the Host header is
  split at its first `:` only when a number follows (transform.lua:72-99). Prefix paths are
  plain string prefixes of the normalized path; regexes are `gateway.rustregex`'s.
- **Upstream path** (kong/router/atc.lua:336-345, 397; kong/router/utils.lua:34-52,
  147-204): with `strip_path` the matched prefix (or whole regex match; on a route without
  paths, `/`) is cut, the rest loses a leading `.`/`..` segment, and Kong's v0 joining
  applies, for `path_handling` v0 and v1 alike.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from gateway import rustregex
from gateway.model import Config, Route, Service
from gateway.uri import escape, normalize

_ENTITIES = uuid.UUID("fd02801f-0957-4a15-a55a-c8d9606f30b5")
_ROUTES = uuid.uuid5(_ENTITIES, "routes")
_SPLIT = uuid.UUID("7f145bf9-0dce-4f91-98eb-debbce4b9f6b")
_U64 = (1 << 64) - 1
PLAIN_HOST_ONLY_BIT = 1 << 60
REGEX_URL_BIT = 1 << 51


@dataclass(frozen=True)
class Match:
    route: Route
    service: Service
    path: str  # the request path as routed (normalized, not escaped): kong.request.get_path
    upstream_path: str  # the path to send to the service, escaped (query not included)


@dataclass(frozen=True)
class _Host:
    op: str  # "==", "suffix" or "prefix"
    value: str
    port: int | None


@dataclass(frozen=True)
class _Candidate:
    route: Route
    service: Service
    priority: int
    ident: uuid.UUID
    paths: tuple[tuple[str, re.Pattern[str] | None], ...]
    methods: frozenset[str]
    hosts: tuple[_Host, ...]

    def matches_host(self, host: str | None, port: int | None) -> bool:
        if not self.hosts:
            return True
        if host is None:
            return False
        for want in self.hosts:
            if want.port is not None and want.port != port:
                continue
            if want.op == "==" and host == want.value:
                return True
            if want.op == "suffix" and host.endswith(want.value):
                return True
            if want.op == "prefix" and host.startswith(want.value):
                return True
        return False

    def matched_path(self, path: str) -> str | None:
        """The part of `path` the route matched ("" for a route without paths), or None."""
        if not self.paths:
            return ""
        for text, regex in self.paths:
            if regex is None:
                if path.startswith(text):
                    return text
            elif (found := regex.match(path)) is not None:
                return found[0]
        return None


class Router:
    def __init__(self, config: Config) -> None:
        services = {s.name: s for s in config.services}
        candidates: list[_Candidate] = []
        for route in config.routes:
            service = services.get(route.service or "")
            if service is None or not service.enabled:
                continue  # Kong refuses routes without a service to proxy to
            candidates += _split(route, service)
        candidates.sort(key=lambda c: (c.priority, c.ident.int), reverse=True)
        self.candidates = candidates

    def match(
        self, method: str, host: str | None, raw_path: bytes | str, server_port: int | None = None
    ) -> Match | None:
        """The route for a request; `raw_path` is the target's path as received (no query),
        `host` the Host header as sent, `server_port` the port the request came in on.

        Raises `gateway.uri.BadPath` for a path nginx would refuse (400).
        """
        if isinstance(raw_path, str):
            raw_path = raw_path.encode("utf-8", "surrogateescape")
        path = normalize(raw_path)
        name, port = split_host_port(host)
        if port is None:
            port = server_port
        for c in self.candidates:
            if c.methods and method not in c.methods:
                continue
            if not c.matches_host(name, port):
                continue
            matched = c.matched_path(path)
            if matched is None:
                continue
            prefix = (matched or "/") if c.route.strip_path else "/"
            rest = sanitize_postfix(path[len(prefix) :])
            upstream = upstream_uri_v0(c.route.strip_path, rest, path, c.service.path or "/")
            return Match(c.route, c.service, path, escape(upstream))
        return None


def split_host_port(host: str | None) -> tuple[str | None, int | None]:
    """transform.lua:72-99: split at the first `:` when a number follows it."""
    if host is None or ":" not in host:
        return host, None
    name, _, port = host.partition(":")
    if not re.fullmatch(r"\d+", port, re.ASCII):
        return host, None
    return name, int(port)


def route_id(route: Route) -> uuid.UUID:
    given = route.raw.get("id")
    return uuid.UUID(str(given)) if given else uuid.uuid5(_ROUTES, route.name)


def _split(route: Route, service: Service) -> list[_Candidate]:
    groups: dict[int, list[str]] = {}
    for path in route.paths:
        groups.setdefault(0 if path.startswith("~") else len(path), []).append(path)
    ident = route_id(route)
    out = []
    for index, paths in enumerate(groups.values() or [[]], start=1):
        sub_id = ident if index == 1 else uuid.uuid5(_SPLIT, f"{ident}#{index}")
        out.append(
            _Candidate(
                route=route,
                service=service,
                priority=priority(route, tuple(paths)),
                ident=sub_id,
                paths=tuple(
                    (p, rustregex.translate(p) if p.startswith("~") else None) for p in paths
                ),
                methods=frozenset(route.methods),
                hosts=tuple(_host(h) for h in route.hosts),
            )
        )
    return out


def _host(text: str) -> _Host:
    name, port = split_host_port(text)
    name = name or ""
    if name.startswith("*"):
        return _Host("suffix", name[1:], port)
    if name.endswith("*"):
        return _Host("prefix", name[:-1], port)
    return _Host("==", name, port)


def _lshift32(value: int, offset: int) -> int:
    """LuaJIT's `bit.lshift` on a number: 32-bit, shift count mod 32, signed result."""
    shifted = ((value & 0xFFFFFFFF) << (offset % 32)) & 0xFFFFFFFF
    return shifted - (1 << 32) if shifted & 0x80000000 else shifted


def priority(route: Route, paths: tuple[str, ...]) -> int:
    """transform.lua:558-667 for an http route of the subset (no headers, snis, sources)."""
    weight = sum(1 for field in (route.methods, route.hosts, paths) if field)
    # `type(hosts) == "table"`: a route that lists hosts, even none, unless one is a wildcard.
    plain_hosts = isinstance(route.raw.get("hosts"), list) and not any(
        "*" in h for h in route.hosts
    )
    regex = bool(paths) and paths[0].startswith("~")
    length = 0 if regex or not paths else len(paths[0])
    parts = (
        _lshift32(weight, 61),
        PLAIN_HOST_ONLY_BIT if plain_hosts else 0,
        REGEX_URL_BIT if regex else 0,
        _lshift32(route.regex_priority if regex else 0, 19),
        length & 0x7FFFF,
    )
    result = 0
    for part in parts:
        result |= part & _U64  # a negative 32-bit part sign-extends into the uint64
    return result


def sanitize_postfix(postfix: str) -> str:
    """utils.lua:34-52: the rest of the path loses a leading `.`, `..`, `./` or `../`."""
    if postfix in (".", ".."):
        return ""
    if postfix.startswith("./"):
        return postfix[2:]
    if postfix.startswith("../"):
        return postfix[3:]
    return postfix


def upstream_uri_v0(strip_path: bool, postfix: str, req_uri: str, base: str) -> str:
    """utils.lua:147-204 (`get_upstream_uri_v0`), the service path `base` and the rest."""
    if base.endswith("/"):
        if not strip_path:
            return base + req_uri[1:]
        if postfix == "":
            if base == "/" or req_uri.endswith("/"):
                return base
            return base[:-1]
        return base[:-1] + postfix if postfix.startswith("/") else base + postfix
    if not strip_path:
        return base if req_uri == "/" else base + req_uri
    if postfix == "":
        return base + "/" if len(req_uri) > 1 and req_uri.endswith("/") else base
    return base + postfix if postfix.startswith("/") else base + "/" + postfix
