"""Talking to a Kong Admin API in DB-less mode: ping, dump, diff and sync.

Kong's documented behaviour this relies on:
- `GET /` → `{"version": …}`; `GET /status` → `{"configuration_hash": …}` (DB-less), the
  MD5 of the config string last loaded, 32 zeros before any;
- `GET /config` → `{"config": "<YAML>"}`;
- `POST /config?check_hash=1&flatten_errors=1` with `{"config": "<text>"}` → 201 loaded,
  304 the same text is already loaded, 400 with `flattened_errors` (one entry per entity:
  `entity_type`, `entity_name`, `entity`, `errors: [{type, field, message}]`), 429 with
  `Retry-After` (seconds) while Kong still loads the previous config
  (kong/api/routes/config.lua:151-157 at 3.9.1).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import yaml

from gateway import diff
from gateway.model import Config

log = logging.getLogger("authgate.gateway")

# A busy Kong (429) is asked again this many times, waiting its Retry-After each time.
BUSY_RETRIES = 5


class AdminError(Exception):
    """The Admin API could not be reached or refused the request."""


class Admin:
    def __init__(
        self,
        addr: str,
        headers: Sequence[str] = (),
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sleep, self.timeout = sleep, timeout
        extra: dict[str, str] = {}
        for header in headers:
            name, sep, value = header.partition(":")
            if not sep or not name.strip():
                raise AdminError(f"--header must be 'Name: value', got {name.strip()!r}")
            extra[name.strip()] = value.strip()
        self.addr = addr.rstrip("/")
        self.http = httpx.Client(
            base_url=self.addr, headers=extra, timeout=timeout, trust_env=False
        )

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AdminError(f"Kong Admin API at {self.addr} unreachable: {exc}") from exc

    def json(self, path: str) -> dict[str, Any]:
        response = self.call("GET", path)
        if response.status_code != 200:
            raise AdminError(f"GET {path}: HTTP {response.status_code}: {_message(response)}")
        try:
            body = response.json()
        except ValueError as exc:
            raise AdminError(f"GET {path}: not JSON; is {self.addr} a Kong Admin API?") from exc
        if not isinstance(body, dict):
            raise AdminError(f"GET {path}: unexpected answer; is {self.addr} a Kong Admin API?")
        return body

    def ping(self) -> str:
        version = self.json("/").get("version", "unknown")
        return f"Successfully connected to Kong! Kong version: {version}"

    def dump(self) -> str:
        config = self.json("/config").get("config")
        if not isinstance(config, str):
            raise AdminError("GET /config: no config string in the answer")
        return config

    def diff(self, config: Config, text: str) -> list[diff.Change]:
        """Prints and returns the changes a sync of `text` would make."""
        if self.json("/status").get("configuration_hash") == _hash(text):
            print("Summary: Kong runs exactly this file (same configuration hash). No changes.")
            return []
        try:
            remote = yaml.safe_load(self.dump()) or {}
        except yaml.YAMLError as exc:
            raise AdminError(f"GET /config: Kong's config is not YAML: {exc}") from exc
        changes = diff.compare(diff.local_entities(config), diff.remote_entities(remote))
        for change in changes:
            print(change)
        counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "delete")}
        print(
            f"Summary: Created {counts['create']}, Updated {counts['update']}, "
            f"Deleted {counts['delete']}"
        )
        return changes

    def sync(self, config: Config, text: str) -> None:
        for attempt in range(BUSY_RETRIES + 1):
            response = self.call(
                "POST",
                "/config",
                params={"check_hash": "1", "flatten_errors": "1"},
                json={"config": text},
            )
            if response.status_code != 429 or attempt == BUSY_RETRIES:
                break
            # Kong is still loading the previous config; its Retry-After says for how long
            # (seconds), bounded by --timeout so a stuck Kong fails sync instead of hanging it.
            wait = min(_seconds(response.headers.get("retry-after")), self.timeout)
            log.info("Kong is busy loading a config; posting again in %.1f s", wait)
            self.sleep(wait)
        if response.status_code == 304:
            print("Kong already runs this configuration (same hash); nothing to load.")
            return
        if response.status_code in (200, 201):
            print(f"Loaded into Kong at {self.addr} (configuration hash {_hash(text)}).")
            return
        raise AdminError(_refusal(response, config))


def _hash(text: str) -> str:
    """Kong's configuration hash for a config posted as a string (MD5 of it)."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _seconds(retry_after: str | None) -> float:
    """Retry-After in seconds (Kong sends a number); 1 s when absent or a date."""
    try:
        return max(0.0, float(retry_after or 1))
    except ValueError:
        return 1.0


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)[:200]


def _refusal(response: httpx.Response, config: Config) -> str:
    """Kong's refusal, each flattened error pointed back at the file's entity."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    flattened = body.get("flattened_errors") if isinstance(body, dict) else None
    if response.status_code != 400 or not flattened:
        retry = response.headers.get("retry-after")
        hint = f" (Kong asks to retry after {retry} s)" if retry else ""
        return f"Kong refused the config: HTTP {response.status_code}: {_message(response)}{hint}"
    lines = [f"Kong refused the config ({len(flattened)} entities with errors):"]
    for entry in flattened:
        where = _locate(entry, config)
        for error in entry.get("errors") or []:
            field = error.get("field")
            lines.append(f"  {where}{'.' + field if field else ''}: {error.get('message')}")
    rest = body.get("fields") or {}
    if isinstance(rest, dict) and rest:
        lines += [f"  {key}: {value}" for key, value in rest.items()]
    return "\n".join(lines)


def _locate(entry: dict[str, Any], config: Config) -> str:
    """The path in the file of the entity an error is about, or Kong's description of it."""
    kind = str(entry.get("entity_type", ""))
    name = entry.get("entity_name")
    entity = entry.get("entity") or {}
    items = list(getattr(config, kind + "s", ()))
    if kind == "plugin":
        # Plugins have no names: narrow by plugin name, then by the config as written.
        items = [p for p in items if p.name == entity.get("name")]
        if len(items) > 1:
            items = [p for p in items if p.raw.get("config") == entity.get("config")]
    else:
        items = [i for i in items if name is not None and i.name == name]
    if len(items) == 1:
        return str(items[0].where)
    return f"{kind} {name or entity.get('name') or entry.get('entity_id') or '?'}"
