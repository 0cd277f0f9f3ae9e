"""What a sync would change: the file's entities against the config a Kong is running.

Entities are compared by identity (services, routes, upstreams by name; consumers by
username or custom_id; plugins by name and where they are attached) on the fields the
supported subset defines, with Kong's defaults filled in on both sides, so a field the
file leaves out is not a change. Kong's export (`GET /config`) refers to parents by id;
those are resolved back to names here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import defaults
from gateway.model import Config, Consumer, PluginConf, Route, Service, Upstream

Key = tuple[str, str]  # (entity type, identity)


@dataclass(frozen=True)
class Change:
    action: str  # "create" | "update" | "delete"
    kind: str
    name: str
    fields: tuple[tuple[str, Any, Any], ...] = ()  # (field, Kong's value, the file's)

    def __str__(self) -> str:
        line = f"{self.action[:-1]}ing {self.kind[:-1]} {self.name}"
        for field, old, new in self.fields:
            line += f"\n    {field}: {old!r} -> {new!r}"
        return line


def local_entities(config: Config) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for service in config.services:
        out[("services", service.name)] = _service(service)
    for route in config.routes:
        out[("routes", route.name)] = _route(route)
    for consumer in config.consumers:
        out[("consumers", consumer.name)] = _consumer(consumer)
    for upstream in config.upstreams:
        out[("upstreams", upstream.name)] = _upstream(upstream)
    for plugin in config.plugins:
        out[("plugins", f"{plugin.name}@{plugin.scope}")] = _plugin(plugin)
    return out


def _service(s: Service) -> dict[str, Any]:
    return {k: getattr(s, k) for k in ("host", *defaults.SERVICE)}


def _route(r: Route) -> dict[str, Any]:
    values = {k: getattr(r, k) for k in defaults.ROUTE}
    values = {k: sorted(v) if isinstance(v, tuple) else v for k, v in values.items()}
    return {"service": r.service, **values}


def _consumer(c: Consumer) -> dict[str, Any]:
    return {"username": c.username, "custom_id": c.custom_id}


def _upstream(u: Upstream) -> dict[str, Any]:
    return {"targets": sorted(f"{t.host}:{t.port}/{t.weight}" for t in u.targets)}


def _plugin(p: PluginConf) -> dict[str, Any]:
    return {"enabled": p.enabled, "config": p.config}


def remote_entities(doc: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    """Kong's exported config (flat or nested, ids or names) as comparable entities."""
    flat: dict[str, list[dict[str, Any]]] = {k: [] for k in _KINDS}
    _flatten(doc, flat, {})
    names: dict[str, str] = {}
    for kind in _KINDS:
        for item in flat[kind]:
            ident = item.get("name") or item.get("username") or item.get("custom_id") or ""
            if item.get("id"):
                names[str(item["id"])] = str(ident)
    out: dict[Key, dict[str, Any]] = {}
    for item in flat["services"]:
        out[("services", item.get("name", ""))] = {
            "host": item.get("host"),
            **{k: item.get(k, d) for k, d in defaults.SERVICE.items()},
        }
    for item in flat["routes"]:
        # Kong exports an empty list as null (or leaves it out).
        values = {
            k: item.get(k) or d if isinstance(d, tuple) else item.get(k, d)
            for k, d in defaults.ROUTE.items()
        }
        values = {k: sorted(v) if isinstance(v, list | tuple) else v for k, v in values.items()}
        out[("routes", item.get("name", ""))] = {"service": _ref(item, "service", names), **values}
    for item in flat["consumers"]:
        consumer = {"username": item.get("username"), "custom_id": item.get("custom_id")}
        out[("consumers", item.get("username") or item.get("custom_id") or "")] = consumer
    targets: dict[str, list[str]] = {}
    for item in flat["targets"]:
        target = str(item.get("target", ""))
        if ":" not in target:
            target += f":{defaults.TARGET['port']}"
        targets.setdefault(_ref(item, "upstream", names) or "", []).append(
            f"{target}/{item.get('weight', defaults.TARGET['weight'])}"
        )
    for item in flat["upstreams"]:
        name = item.get("name", "")
        out[("upstreams", name)] = {"targets": sorted(targets.get(name, []))}
    for item in flat["plugins"]:
        refs = [(k, _ref(item, k, names)) for k in ("service", "route", "consumer")]
        scope = ",".join(f"{k}={v}" for k, v in refs if v) or "global"
        enabled = item.get("enabled", defaults.PLUGIN["enabled"])
        plugin = {"enabled": enabled, "config": item.get("config") or {}}
        out[("plugins", f"{item.get('name')}@{scope}")] = plugin
    return out


_KINDS = ("services", "routes", "plugins", "consumers", "upstreams", "targets")
_PARENT = {
    "services": "service",
    "routes": "route",
    "consumers": "consumer",
    "upstreams": "upstream",
}


def _flatten(
    node: dict[str, Any], flat: dict[str, list[dict[str, Any]]], parent: dict[str, str]
) -> None:
    for kind in _KINDS:
        for item in node.get(kind) or []:
            if not isinstance(item, dict):
                continue
            flat[kind].append({**parent, **item})
            if kind in _PARENT:
                ident = item.get("id") or item.get("name") or item.get("username") or ""
                _flatten(item, flat, {_PARENT[kind]: str(ident)})


def _ref(item: dict[str, Any], key: str, names: dict[str, str]) -> str | None:
    value = item.get(key)
    if isinstance(value, dict):
        value = value.get("id") or value.get("name")
    if not value:
        return None
    return names.get(str(value), str(value))


def compare(local: dict[Key, dict[str, Any]], remote: dict[Key, dict[str, Any]]) -> list[Change]:
    changes: list[Change] = []
    for key, want in local.items():
        have = remote.get(key)
        if have is None:
            changes.append(Change("create", *key))
            continue
        fields = tuple(
            (name, have.get(name), value)
            for name, value in want.items()
            if not _same(have.get(name), value)
        )
        if fields:
            changes.append(Change("update", *key, fields))
    changes += [Change("delete", *key) for key in remote if key not in local]
    return changes


def _same(have: Any, want: Any) -> bool:
    """Equal on what the file says; a config key only Kong's side has is a default."""
    if isinstance(want, dict) and isinstance(have, dict):
        return all(_same(have.get(k), v) for k, v in want.items())
    return bool(have == want)
