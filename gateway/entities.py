"""Checks for each entity of the supported subset, with Kong 3.0's defaults.

`Builder` takes raw entities one at a time (with their path in the file), records every
problem it finds, and `finish()` resolves the references between them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway import addresses, defaults, paths, schema
from gateway.model import Config, Consumer, PluginConf, Route, Service, Target, Upstream
from gateway.plugins import PluginError, find

COMMON = {"id", "tags"}
SERVICE = COMMON | {"name", "url", "protocol", "host", "port", "path", "retries", "enabled"}
SERVICE |= {"connect_timeout", "write_timeout", "read_timeout", "routes", "plugins"}
ROUTE = COMMON | {"name", "service", "paths", "methods", "hosts", "strip_path", "plugins"}
ROUTE |= {"preserve_host", "regex_priority", "path_handling", "protocols"}
PLUGIN = COMMON | {"name", "config", "enabled", "protocols", "service", "route", "consumer"}
CONSUMER = COMMON | {"username", "custom_id", "plugins"}
UPSTREAM = COMMON | {"name", "targets"}
TARGET = COMMON | {"target", "weight"}

# Kong's utf8_name (kong/db/schema/typedefs.lua:137-150 at 3.9.1): ASCII letters, digits and
# . - _ ~, and any non-ASCII character.
_NAME = re.compile(r"^(?:[A-Za-z0-9._~-]|[^\x00-\x7f])+\Z")
_METHOD = re.compile(r"^[A-Z]+\Z")
PORTS = {"http": 80, "https": 443}


class Builder:
    def __init__(self, plugins_dir: Path) -> None:
        self.plugins_dir = plugins_dir
        self.problems: list[tuple[str, str]] = []
        self.services: list[Service] = []
        self.routes: list[Route] = []
        self.plugins: list[PluginConf] = []
        self.consumers: list[Consumer] = []
        self.upstreams: list[Upstream] = []

    def bad(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def fields(self, item: Any, path: str, allowed: set[str]) -> dict[str, Any] | None:
        if not isinstance(item, dict):
            self.bad(path, "expected a mapping")
            return None
        for key in item:
            if key not in allowed:
                self.bad(f"{path}.{key}", "unknown field (outside the supported subset)")
        return item

    def value(self, item: dict[str, Any], key: str, path: str, kind: type, default: Any) -> Any:
        got = item.get(key, default)
        if got is None or (isinstance(got, kind) and not (kind is int and isinstance(got, bool))):
            return got
        self.bad(f"{path}.{key}", f"expected {_KINDS[kind]}")
        return default

    def name(self, item: dict[str, Any], path: str, key: str = "name", need: bool = True) -> str:
        got = self.value(item, key, path, str, None)
        if got is None:
            if need:
                self.bad(f"{path}.{key}", "required field missing")
            return ""
        if not _NAME.match(got):
            self.bad(f"{path}.{key}", "invalid value: letters, digits and . - _ ~ only")
        return str(got)

    def service(self, item: Any, path: str) -> None:
        raw = self.fields(item, path, SERVICE)
        if raw is None:
            return
        name = self.name(raw, path)
        protocol, host, port, svc_path = "http", None, None, None
        url = self.value(raw, "url", path, str, None)
        if url is not None:
            for key in ("protocol", "host", "port", "path"):
                if key in raw:
                    self.bad(f"{path}.{key}", "set either url or protocol/host/port/path")
            parts = urlsplit(url)
            protocol, host, svc_path = parts.scheme, parts.hostname, parts.path or None
            try:
                port = parts.port
            except ValueError:
                self.bad(f"{path}.url", "invalid port in url")
            if not host:
                self.bad(f"{path}.url", "expected a URL like http://host:port/path")
            elif (problem := addresses.service_host(host)) is not None:
                self.bad(f"{path}.url", f"host {problem}")
        else:
            protocol = self.value(raw, "protocol", path, str, defaults.SERVICE["protocol"])
            host = self.value(raw, "host", path, str, None)
            port = self.value(raw, "port", path, int, None)
            svc_path = self.value(raw, "path", path, str, None)
            if "host" not in raw:
                self.bad(f"{path}.host", "required field missing (or set url)")
            elif isinstance(host, str) and (problem := addresses.service_host(host)) is not None:
                self.bad(f"{path}.host", problem)
        if protocol not in PORTS:
            self.bad(f"{path}.protocol", "expected one of: http, https")
        port = PORTS.get(protocol, 80) if port is None else port
        if not 0 <= port <= 65535:  # typedefs.lua:311-315: 0 is a port Kong accepts
            self.bad(f"{path}.port", "value should be between 0 and 65535")
        if svc_path is not None and (problem := paths.service_path(svc_path)) is not None:
            self.bad(f"{path}.path", problem)
        retries = self.value(raw, "retries", path, int, defaults.SERVICE["retries"])
        if not 0 <= retries <= 32767:  # kong/db/schema/entities/services.lua:29-30
            self.bad(f"{path}.retries", "value should be between 0 and 32767")
        timeouts = [self.value(raw, t, path, int, defaults.SERVICE[t]) for t in _TIMEOUTS]
        for key, timeout in zip(_TIMEOUTS, timeouts, strict=True):
            if not 1 <= timeout <= 2**31 - 2:
                self.bad(f"{path}.{key}", "value should be between 1 and 2147483646")
        self.services.append(
            Service(
                name=name,
                protocol=protocol,
                host=host or "",
                port=port,
                path=svc_path,
                retries=retries,
                connect_timeout=timeouts[0],
                write_timeout=timeouts[1],
                read_timeout=timeouts[2],
                enabled=self.value(raw, "enabled", path, bool, defaults.SERVICE["enabled"]),
                where=path,
                raw=raw,
            )
        )
        self.nested(raw, path, "routes", self.route, service=name)
        self.nested(raw, path, "plugins", self.plugin, service=name)

    def nested(self, raw: dict[str, Any], path: str, key: str, build: Any, **ref: str) -> None:
        items = raw.get(key) or []
        if not isinstance(items, list):
            self.bad(f"{path}.{key}", "expected a list")
            return
        for i, item in enumerate(items):
            build(item, f"{path}.{key}[{i}]", **ref)

    def route(self, item: Any, path: str, service: str | None = None) -> None:
        raw = self.fields(item, path, ROUTE)
        if raw is None:
            return
        if service is not None and "service" in raw:
            self.bad(f"{path}.service", "a nested route belongs to its service already")
        name = self.name(raw, path)
        service = service or self.name(raw, path, "service", need=False) or None
        route_paths = tuple(self.strings(raw, "paths", path, self.check_path))
        methods = tuple(self.strings(raw, "methods", path, self.check_method))
        hosts = tuple(self.strings(raw, "hosts", path, self.check_host))
        protocols = self.protocols(raw, path)
        if not any(raw.get(key) for key in ("paths", "methods", "hosts")):
            self.bad(path, "must set one of 'methods', 'hosts', 'paths'")
        # routes.lua:194 accepts v0 and v1; the traditional_compatible router joins every
        # route's upstream path the v0 way (kong/router/atc.lua:336-345), so v1 runs as v0.
        handling = self.value(raw, "path_handling", path, str, "v0")
        if handling not in ("v0", "v1"):
            self.bad(f"{path}.path_handling", "expected one of: v0, v1")
        self.routes.append(
            Route(
                name=name,
                service=service,
                paths=route_paths,
                methods=methods,
                hosts=hosts,
                strip_path=self.value(raw, "strip_path", path, bool, defaults.ROUTE["strip_path"]),
                preserve_host=self.value(
                    raw, "preserve_host", path, bool, defaults.ROUTE["preserve_host"]
                ),
                regex_priority=self.value(
                    raw, "regex_priority", path, int, defaults.ROUTE["regex_priority"]
                ),
                path_handling=handling,
                protocols=protocols,
                where=path,
                raw=raw,
            )
        )
        self.nested(raw, path, "plugins", self.plugin, route=name)

    def protocols(self, raw: dict[str, Any], path: str) -> tuple[str, ...]:
        """routes.lua:136-149: a required, non-empty set; only http and https are in the subset."""
        if "protocols" not in raw:
            return tuple(defaults.ROUTE["protocols"])
        if raw["protocols"] is None:
            self.bad(f"{path}.protocols", "required field missing")
            return ()
        protocols = tuple(self.strings(raw, "protocols", path, None))
        if isinstance(raw["protocols"], list) and not raw["protocols"]:
            self.bad(f"{path}.protocols", "length must be at least 1")
        for i, proto in enumerate(protocols):
            if proto not in PORTS:
                self.bad(f"{path}.protocols[{i}]", "expected one of: http, https")
        return protocols

    def strings(self, raw: dict[str, Any], key: str, path: str, check: Any) -> list[str]:
        items = raw.get(key) or []
        if not isinstance(items, list):
            self.bad(f"{path}.{key}", "expected a list")
            return []
        good = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                self.bad(f"{path}.{key}[{i}]", "expected a string")
            elif check is None or check(item, f"{path}.{key}[{i}]"):
                good.append(item)
        return good

    def check_path(self, value: str, path: str) -> bool:
        problem = paths.route_path(value)
        if problem is not None:
            self.bad(path, problem)
        return problem is None

    def check_method(self, value: str, path: str) -> bool:
        if not _METHOD.match(value):
            self.bad(path, "invalid value: methods are upper-case tokens (GET, POST, …)")
            return False
        return True

    def check_host(self, value: str, path: str) -> bool:
        problem = addresses.route_host(value)
        if problem is not None:
            self.bad(path, problem)
        return problem is None

    def plugin(self, item: Any, path: str, **ref: str) -> None:
        raw = self.fields(item, path, PLUGIN)
        if raw is None:
            return
        for key in ref:
            if key in raw:
                self.bad(f"{path}.{key}", f"a nested plugin belongs to its {key} already")
        name = self.name(raw, path)
        refs = {k: ref.get(k) or self.name(raw, path, k, need=False) or None for k in _REFS}
        config: dict[str, Any] = {}
        if name:
            try:
                module = find(name, self.plugins_dir)
            except PluginError as exc:
                self.bad(f"{path}.name", str(exc))
            else:
                config, found = schema.check_record(
                    module.schema, raw.get("config"), path + ".config"
                )
                self.problems.extend(found)
        self.plugins.append(
            PluginConf(
                name=name,
                config=config,
                enabled=self.value(raw, "enabled", path, bool, defaults.PLUGIN["enabled"]),
                where=path,
                raw=raw,
                **refs,
            )
        )

    def consumer(self, item: Any, path: str) -> None:
        raw = self.fields(item, path, CONSUMER)
        if raw is None:
            return
        # consumers.lua:12-23: username and custom_id are any non-empty strings.
        username = self.value(raw, "username", path, str, None)
        custom_id = self.value(raw, "custom_id", path, str, None)
        for key, value in (("username", username), ("custom_id", custom_id)):
            if value == "":
                self.bad(f"{path}.{key}", "length must be at least 1")
        if not (username or custom_id):
            self.bad(
                path, "at least one of these fields must be non-empty: 'custom_id', 'username'"
            )
        consumer = Consumer(username=username, custom_id=custom_id, where=path, raw=raw)
        self.consumers.append(consumer)
        self.nested(raw, path, "plugins", self.plugin, consumer=consumer.name)

    def upstream(self, item: Any, path: str) -> None:
        raw = self.fields(item, path, UPSTREAM)
        if raw is None:
            return
        name = self.name(raw, path)
        if name and (problem := addresses.upstream_name(name)) is not None:
            self.bad(f"{path}.name", problem)
        targets = []
        for i, target in enumerate(raw.get("targets") or []):
            where = f"{path}.targets[{i}]"
            got = self.fields(target, where, TARGET)
            if got is None:
                continue
            text = self.value(got, "target", where, str, None)
            if text is None:
                self.bad(f"{where}.target", "required field missing")
                continue
            address = addresses.target(text)
            if isinstance(address, str):
                self.bad(f"{where}.target", address)
                continue
            weight = self.value(got, "weight", where, int, defaults.TARGET["weight"])
            if not 0 <= weight <= 65535:
                self.bad(f"{where}.weight", "value should be between 0 and 65535")
            port = defaults.TARGET["port"] if address.port is None else address.port
            targets.append(Target(host=address.host, port=port, weight=weight))
        self.upstreams.append(Upstream(name=name, targets=tuple(targets), where=path, raw=raw))

    def finish(self) -> Config:
        names: dict[str, set[str]] = {}
        for kind, items in (
            ("services", self.services),
            ("routes", self.routes),
            ("consumers", self.consumers),
            ("upstreams", self.upstreams),
        ):
            seen = names.setdefault(kind, set())
            for item in items:
                if item.name and item.name in seen:
                    self.bad(item.where, f"duplicate {kind[:-1]} name {item.name!r}")
                seen.add(item.name)
        for route in self.routes:
            if route.service and route.service not in names["services"]:
                self.bad(f"{route.where}.service", f"no service named {route.service!r}")
        scopes: set[tuple[Any, ...]] = set()
        for plugin in self.plugins:
            for key, ref in plugin.scope_refs:
                if ref and ref not in names[key + "s"]:
                    self.bad(f"{plugin.where}.{key}", f"no {key} named {ref!r}")
            scope = (plugin.name, *plugin.scope_refs)
            if scope in scopes:
                self.bad(plugin.where, f"plugin {plugin.name!r} is already set on {plugin.scope}")
            scopes.add(scope)
        return Config(
            services=tuple(self.services),
            routes=tuple(self.routes),
            plugins=tuple(self.plugins),
            consumers=tuple(self.consumers),
            upstreams=tuple(self.upstreams),
        )


_KINDS = {str: "a string", int: "an integer", bool: "a boolean", list: "a list"}
_TIMEOUTS = ("connect_timeout", "write_timeout", "read_timeout")
_REFS = ("service", "route", "consumer")
