"""The entities of a Kong declarative config (3.0 format) that authgate supports, checked.

`declarative.parse` builds these from a kong.yml; the router, the runtime and the diff all
read them. `where` is the entity's path in the file (`services[1].routes[0]`) so that every
later error (a Kong Admin API's, a diff line) can point back at what the user wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Service:
    name: str
    protocol: str
    host: str
    port: int
    path: str | None
    retries: int
    connect_timeout: int  # milliseconds, as Kong
    write_timeout: int
    read_timeout: int
    enabled: bool
    where: str
    raw: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Route:
    name: str
    service: str | None
    paths: tuple[str, ...]
    methods: tuple[str, ...]
    hosts: tuple[str, ...]
    strip_path: bool
    preserve_host: bool
    regex_priority: int
    path_handling: str
    protocols: tuple[str, ...]
    where: str
    raw: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class PluginConf:
    name: str
    config: dict[str, Any]
    enabled: bool
    service: str | None
    route: str | None
    consumer: str | None
    where: str
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def scope(self) -> str:
        parts = [f"{k}={v}" for k, v in self.scope_refs if v]
        return ",".join(parts) or "global"

    @property
    def scope_refs(self) -> tuple[tuple[str, str | None], ...]:
        return (("service", self.service), ("route", self.route), ("consumer", self.consumer))


@dataclass(frozen=True)
class Consumer:
    username: str | None
    custom_id: str | None
    where: str
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.username or self.custom_id or ""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    weight: int


@dataclass(frozen=True)
class Upstream:
    name: str
    targets: tuple[Target, ...]
    where: str
    raw: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Config:
    services: tuple[Service, ...]
    routes: tuple[Route, ...]
    plugins: tuple[PluginConf, ...]
    consumers: tuple[Consumer, ...]
    upstreams: tuple[Upstream, ...]
