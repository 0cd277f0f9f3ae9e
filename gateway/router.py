"""Kong's route matching for the supported subset (the 3.x `traditional_compatible` order).

Each (route, path) pair is a candidate; candidates are tried in Kong's priority order:
more matching fields first (hosts, methods, paths), then routes whose hosts are all plain
over wildcards, regex paths before prefix paths, higher `regex_priority` among regexes,
longer prefixes before shorter, and the file's order last. Prefix paths match as plain
string prefixes (`/api` matches `/apis`, as in Kong); regexes are anchored at the start.
Paths are judged as Kong judges them (`gateway.uri.normalize`: the raw request path decoded
once, reserved characters left encoded, dot segments resolved, `//` merged), and the
upstream path is re-escaped once (`gateway.uri.escape`), so the upstream, decoding once,
sees exactly the path that was routed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from authgate.paths import normalize_host
from gateway.model import Config, Route, Service
from gateway.uri import escape, normalize


@dataclass(frozen=True)
class Match:
    route: Route
    service: Service
    path: str  # the request path as routed (normalized, not escaped): kong.request.get_path
    upstream_path: str  # the path to send to the service, escaped (query not included)


@dataclass(frozen=True)
class _Candidate:
    route: Route
    service: Service
    prefix: str | None
    regex: re.Pattern[str] | None
    methods: frozenset[str]
    hosts: tuple[str, ...]

    def matches_host(self, host: str) -> bool:
        for want in self.hosts:
            if want.startswith("*."):
                if host.endswith(want[1:]):
                    return True
            elif want.endswith(".*"):
                if host.startswith(want[:-1]):
                    return True
            elif host == want:
                return True
        return not self.hosts


class Router:
    def __init__(self, config: Config) -> None:
        services = {s.name: s for s in config.services}
        ranked: list[tuple[tuple[int, ...], int, _Candidate]] = []
        for order, route in enumerate(config.routes):
            service = services.get(route.service or "")
            if service is None or not service.enabled:
                continue  # Kong refuses routes without a service to proxy to
            for path in route.paths or (None,):
                candidate = _candidate(route, service, path)
                ranked.append((_priority(route, path), order, candidate))
        ranked.sort(key=lambda item: (tuple(-p for p in item[0]), item[1]))
        self.candidates = [c for _, _, c in ranked]

    def match(self, method: str, host: str, raw_path: bytes | str) -> Match | None:
        """The route for a request; `raw_path` is the target's path as received (no query).

        Raises `gateway.uri.BadPath` for a path nginx would refuse (400).
        """
        host = normalize_host(host)
        if isinstance(raw_path, str):
            raw_path = raw_path.encode("utf-8", "surrogateescape")
        path = normalize(raw_path)
        for c in self.candidates:
            if c.methods and method not in c.methods:
                continue
            if not c.matches_host(host):
                continue
            if c.regex is not None:
                found = c.regex.match(path)
                if found is None:
                    continue
                rest = path[found.end() :] if c.route.strip_path else path
            elif c.prefix is not None:
                if not path.startswith(c.prefix):
                    continue
                rest = path[len(c.prefix) :] if c.route.strip_path else path
            else:
                rest = path
            return Match(c.route, c.service, path, escape(join(c.service.path, rest)))
        return None


def _candidate(route: Route, service: Service, path: str | None) -> _Candidate:
    regex = re.compile(path[1:]) if path and path.startswith("~") else None
    return _Candidate(
        route=route,
        service=service,
        prefix=path if regex is None else None,
        regex=regex,
        methods=frozenset(route.methods),
        hosts=route.hosts,
    )


def _priority(route: Route, path: str | None) -> tuple[int, ...]:
    weight = sum(1 for field in (route.hosts, route.methods, route.paths) if field)
    plain_hosts = int(bool(route.hosts) and not any("*" in h for h in route.hosts))
    is_regex = int(bool(path and path.startswith("~")))
    regex_priority = route.regex_priority if is_regex else 0
    length = len(path) if path and not is_regex else 0
    return (weight, plain_hosts, is_regex, regex_priority, length)


def join(service_path: str | None, rest: str) -> str:
    """The upstream path from the service's path and what the route left of the request's.

    Kong's `path_handling: v0` (the only one its default router implements): one slash
    between the two, none added when nothing is left (`/s` + `` → `/s`, `/s` + `/` → `/s/`,
    `/s` + `foo` → `/s/foo`).
    """
    base = service_path or "/"
    if not rest:
        return base.rstrip("/") or "/"
    if base == "/":
        return rest if rest.startswith("/") else "/" + rest
    return base.rstrip("/") + "/" + rest.lstrip("/")
