"""Kong's side of the external plugin protocol, to drive kong-pdk's real plugin server.

What Kong does (kong/runloop/plugin_servers, msgpack-RPC over a unix socket, one
connection per call): `plugin.StartInstance {Name, Config: <JSON>}` once per plugin
config; per phase `plugin.HandleEvent {InstanceId, EventName}`; while the answer's `Data`
is a PDK call `{Method, Args}`, Kong runs it and answers with `plugin.Step` (or the typed
variant Kong picks for that method, or `plugin.StepError` for a nil+error result) until
`Data` is "ret" or the call is `kong.response.exit`. Header maps go back with every value
wrapped in a list, raw bodies as msgpack binary.

`MiniKong` runs one request through access → upstream → response → log like Kong does,
skipping the response phase when the upstream could not be reached (Kong answers 502
from its error handler then).
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack

from .harness import REPO

PLUGIN = REPO / "plugins" / "idempotency.py"
# The Step variant Kong calls for a method's result (kong/runloop/plugin_servers).
TYPED_STEPS = {
    "kong.request.get_headers": "plugin.StepMultiMap",
    "kong.response.get_headers": "plugin.StepMultiMap",
    "kong.service.response.get_headers": "plugin.StepMultiMap",
    "kong.request.get_query": "plugin.StepMultiMap",
    "kong.client.get_consumer": "plugin.StepConsumer",
    "kong.router.get_route": "plugin.StepRoute",
    "kong.router.get_service": "plugin.StepService",
}
TERMINAL = {"kong.response.exit", "kong.response.error"}


class PluginServer:
    """The plugin run as Kong's pluginserver_*_start_cmd runs it: its own dedicated server."""

    def __init__(self, prefix: Path, log: Path) -> None:
        self.socket = prefix / "idempotency.sock"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(PLUGIN), "--kong-prefix", str(prefix), "--socket-name", self.socket.name],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._ids = itertools.count(1)
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"plugin server did not start:\n{log.read_text()}")
            time.sleep(0.02)

    def call(self, method: str, *args: Any) -> Any:
        msgid = next(self._ids)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(self.socket))
            conn.sendall(msgpack.packb([0, msgid, method, list(args)]))
            unpacker = msgpack.Unpacker(strict_map_key=False)
            while True:
                data = conn.recv(65536)
                if not data:
                    raise ConnectionError(f"plugin server closed the connection during {method}")
                unpacker.feed(data)
                for kind, answer_id, error, result in unpacker:
                    assert kind == 1 and answer_id == msgid
                    if error:
                        raise RuntimeError(f"{method}: {error}")
                    return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


@dataclass
class Request:
    """What Kong knows of one request, and what it learns while proxying it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = b""  # None: Kong buffered it to a file (over client_body_buffer_size)
    query: str = ""
    client_ip: str = "203.0.113.7"
    route: dict[str, Any] = field(default_factory=lambda: {"id": "3f8a", "name": "writes"})
    service: dict[str, Any] = field(default_factory=lambda: {"id": "9c1d", "name": "api"})
    shared: dict[str, Any] = field(default_factory=dict)
    exit: tuple[int, bytes, dict[str, Any]] | None = None
    status: int = 0
    source: str = "service"
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""


def _wrap(headers: dict[str, str]) -> dict[str, list[str]]:
    return {k.lower(): [v] for k, v in headers.items()}


def _raw_body(req: Request) -> bytes:
    if req.body is None:
        # Kong's get_raw_body answers nil + this error; the server turns it into StepError.
        raise LookupError("request body did not fit into client body buffer")
    return req.body


def pdk(req: Request, method: str, args: list[Any]) -> Any:
    """Kong's answer to one PDK call, for the calls a plugin may make here."""
    calls: dict[str, Callable[[], Any]] = {
        "kong.request.get_method": lambda: req.method,
        "kong.request.get_path": lambda: req.path,
        "kong.request.get_raw_query": lambda: req.query,
        "kong.request.get_headers": lambda: _wrap(req.headers),
        "kong.request.get_header": lambda: _wrap(req.headers).get(args[0].lower(), [None])[0],
        "kong.request.get_raw_body": lambda: _raw_body(req),
        "kong.router.get_route": lambda: req.route,
        "kong.router.get_service": lambda: req.service,
        "kong.client.get_consumer": lambda: None,
        "kong.client.get_ip": lambda: req.client_ip,
        "kong.ctx.shared.get": lambda: req.shared.get(args[0]),
        "kong.ctx.shared.set": lambda: req.shared.__setitem__(args[0], args[1]),
        "kong.response.get_status": lambda: req.status,
        "kong.response.get_source": lambda: req.source,
        "kong.response.get_headers": lambda: _wrap(req.response_headers),
        "kong.service.response.get_raw_body": lambda: req.response_body,
    }
    if method not in calls:
        raise LookupError(f"PDK method {method} is not offered here")
    return calls[method]()


class MiniKong:
    """One plugin instance, and requests proxied to an upstream through it, as Kong does."""

    def __init__(self, server: PluginServer, config: dict[str, Any], upstream: str) -> None:
        self.server = server
        self.upstream = upstream
        started = server.call(
            "plugin.StartInstance", {"Name": "idempotency", "Config": json.dumps(config)}
        )
        self.instance = started["Id"]

    def phase(self, name: str, req: Request) -> None:
        answer = self.server.call(
            "plugin.HandleEvent", {"InstanceId": self.instance, "EventName": name}
        )
        event, data = answer["EventId"], answer["Data"]
        while data != "ret":
            method, args = data["Method"], list(data.get("Args") or [])
            if method in TERMINAL:
                status, body, headers = [*args, None, None][:3]
                body = body.encode() if isinstance(body, str) else (body or b"")
                req.exit, req.source = (int(status), body, dict(headers or {})), "exit"
                return
            try:
                step, result = TYPED_STEPS.get(method, "plugin.Step"), pdk(req, method, args)
            except LookupError as exc:
                step, result = "plugin.StepError", str(exc)
            data = self.server.call(step, {"EventId": event, "Data": result})["Data"]

    def handle(self, req: Request) -> tuple[int, dict[str, Any], bytes]:
        self.phase("access", req)
        if req.exit is None:
            try:
                with httpx.Client(timeout=30) as client:
                    url = self.upstream + req.path + ("?" + req.query if req.query else "")
                    answer = client.request(req.method, url, content=req.body, headers=req.headers)
                req.status, req.response_body = answer.status_code, answer.content
                req.response_headers = dict(answer.headers)
                self.phase("response", req)
            except httpx.TransportError:
                req.status, req.source = 502, "error"  # the response phase does not run
                req.response_body = (
                    b'{"message":"An invalid response was received from the upstream server"}'
                )
        self.phase("log", req)
        if req.exit is not None:
            status, body, headers = req.exit
            return status, headers, body
        return req.status, req.response_headers, req.response_body
