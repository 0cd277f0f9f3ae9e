"""A Kong Admin API in DB-less mode, in the shapes Kong documents (Kong cannot run here).

Answers `GET /`, `GET /status` (`configuration_hash`: MD5 of the config string last loaded,
32 zeros before any), `GET /config` (`{"config": "<YAML>"}`, Kong's export: flat entity
lists, a parent named by its bare id (`service: <uuid>`, kong/db/declarative/export.lua:
187-198 at 3.9.1), defaults filled in, `_transform: false`) and `POST /config`
(`check_hash=1` → 304 for the loaded string; 400 with code 14 and, with
`flatten_errors=1`, `flattened_errors` entries for plugins this Kong does not have
enabled; 429 + `Retry-After` while a previous config is still loading,
kong/api/routes/config.lua:151-157; 201 otherwise). An admin token can be required, as Kong Enterprise's RBAC does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from .harness import _Server

EMPTY = "0" * 32
_NS = uuid.UUID("0b8e1c1e-5a60-4e53-a0a4-5f3c3a3f2b10")


def _id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}:{name}"))


def export(doc: dict[str, Any]) -> str:
    """Kong's export of a loaded config: flat, ids everywhere, defaults filled."""
    out: dict[str, Any] = {"_format_version": "3.0", "_transform": False}
    services, routes, plugins = [], [], []
    for service in doc.get("services") or []:
        url = urlsplit(service.get("url", ""))
        sid = _id("service", service["name"])
        services.append(
            {
                "id": sid,
                "name": service["name"],
                "protocol": url.scheme or service.get("protocol", "http"),
                "host": url.hostname or service.get("host"),
                "port": url.port or service.get("port", 80),
                "path": url.path or service.get("path"),
                "retries": service.get("retries", 5),
                "connect_timeout": service.get("connect_timeout", 60000),
                "read_timeout": service.get("read_timeout", 60000),
                "write_timeout": service.get("write_timeout", 60000),
                "enabled": True,
                "created_at": 1700000000,
            }
        )
        for route in service.get("routes") or []:
            rid = _id("route", route["name"])
            routes.append(
                {
                    "id": rid,
                    "name": route["name"],
                    "service": sid,
                    "paths": route.get("paths"),
                    "methods": route.get("methods"),
                    "hosts": route.get("hosts"),
                    "strip_path": route.get("strip_path", True),
                    "preserve_host": route.get("preserve_host", False),
                    "regex_priority": route.get("regex_priority", 0),
                    "protocols": route.get("protocols", ["http", "https"]),
                    "path_handling": "v0",
                    "https_redirect_status_code": 426,
                }
            )
            for plugin in route.get("plugins") or []:
                plugins.append(
                    {
                        "id": _id("plugin", plugin["name"] + rid),
                        "name": plugin["name"],
                        "route": rid,
                        "config": plugin.get("config") or {},
                        "enabled": plugin.get("enabled", True),
                        "protocols": ["grpc", "grpcs", "http", "https"],
                    }
                )
    out |= {"services": services, "routes": routes, "plugins": plugins}
    return yaml.safe_dump(out, sort_keys=False)


class FakeKong(_Server):
    """Kong's Admin API (DB-less) for the few calls authgate-gateway makes, in Kong's
    documented shapes: `GET /`, `/status`, `/config`, and `POST /config`."""

    def __init__(
        self, enabled_plugins: tuple[str, ...] = ("idempotency",), token: str = ""
    ) -> None:
        self.enabled = set(enabled_plugins)
        self.token = token
        self.hash = EMPTY
        self.config = export({})
        self.posts: list[dict[str, Any]] = []
        self.busy = 0  # how many POST /config to answer 429 "Currently loading …"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self, status: int, body: Any = None, retry: str = "") -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if retry:
                    self.send_header("Retry-After", retry)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.answer(*outer.get(self.headers.get("Kong-Admin-Token"), self.path))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.answer(*outer.post(self.headers.get("Kong-Admin-Token"), self.path, raw))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)

    def _refused(self, token: str | None) -> tuple[int, Any] | None:
        if self.token and token != self.token:
            return 401, {"message": "Invalid credentials. Token or User credentials required"}
        return None

    def get(self, token: str | None, target: str) -> tuple[int, Any]:
        refused = self._refused(token)
        if refused:
            return refused
        path = urlsplit(target).path
        if path == "/":
            return 200, {"tagline": "Welcome to kong", "version": "3.9.1", "edition": "community"}
        if path == "/status":
            server = {"connections_accepted": 1, "connections_active": 1, "total_requests": 1}
            return 200, {"server": server, "memory": {}, "configuration_hash": self.hash}
        if path == "/config":
            return 200, {"config": self.config}
        return 404, {"message": "Not found"}

    def post(self, token: str | None, target: str, raw: bytes) -> tuple[Any, ...]:
        refused = self._refused(token)
        if refused:
            return refused
        url = urlsplit(target)
        if url.path != "/config":
            return 404, {"message": "Not found"}
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        text = json.loads(raw)["config"]
        self.posts.append({"query": query, "text": text})
        if self.busy:
            self.busy -= 1
            return 429, {"message": "Currently loading previous configuration"}, "1"
        digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
        if query.get("check_hash") == "1" and digest == self.hash:
            return 304, None
        doc = yaml.safe_load(text)
        flattened = self.check(doc)
        if flattened:
            body: dict[str, Any] = {
                "code": 14,
                "name": "invalid declarative configuration",
                "message": "declarative config is invalid: {}",
                "fields": {},
            }
            if query.get("flatten_errors", "").lower() in ("1", "true", "on", "yes"):
                body["flattened_errors"] = flattened
            return 400, body
        self.hash, self.config = digest, export(doc)
        return 201, {"services": {}, "routes": {}}

    def check(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        errors = []
        for service in doc.get("services") or []:
            for route in service.get("routes") or []:
                for plugin in route.get("plugins") or []:
                    if plugin["name"] not in self.enabled:
                        message = f"plugin '{plugin['name']}' not enabled; add it to the 'plugins' configuration property"
                        errors.append(
                            {
                                "entity_type": "plugin",
                                "entity": {**plugin, "route": {"id": _id("route", route["name"])}},
                                "errors": [{"type": "field", "field": "name", "message": message}],
                            }
                        )
        return errors
