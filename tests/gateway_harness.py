"""Real things for the gateway tests: a counting upstream and `authgate-gateway serve`.

The counting upstream is the service behind Kong: it records every request that reached
it (so a test can prove a write ran once), answers after a configurable delay (so
concurrent requests overlap) and with a status the path chooses (`/status/500`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import yaml

from stack.processes import wait_for_port

from .harness import ServiceProcess, _Server


class CountingUpstream(_Server):
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.seen: list[dict[str, Any]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without TCP_NODELAY a keep-alive
            # client waits out its delayed ACK (~40 ms) for the body.
            disable_nagle_algorithm = True

            def _count(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    outer.seen.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "body": body.decode(errors="replace"),
                            "size": len(body),
                            "sha256": hashlib.sha256(body).hexdigest(),
                            "user": self.headers.get("X-Auth-User"),
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                        }
                    )
                    number = len(outer.seen)
                time.sleep(outer.delay)
                status = int(self.path.split("/status/")[1][:3]) if "/status/" in self.path else 201
                answer = {
                    "execution": number,
                    "path": self.path,
                    "user": self.headers.get("X-Auth-User"),
                }
                # 204 and 304 carry no content (RFC 9110 §15.3.5, §15.4.5).
                data = b"" if status in (204, 304) else json.dumps(answer).encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                self.send_header("Location", f"/items/{number}")
                self.send_header("X-Not-Replayed", "upstream-only")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _count

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)

    def count(self, path: str | None = None) -> int:
        return sum(1 for s in self.seen if path is None or s["path"] == path)


def kong_yml(
    upstream_url: str, plugin: Mapping[str, Any] | None = None, **service: Any
) -> dict[str, Any]:
    """A small kong.yml: one service, a write route with the idempotency plugin."""
    route: dict[str, Any] = {"name": "writes", "paths": ["/api/"], "methods": ["POST", "PATCH"]}
    if plugin is not None:
        route["plugins"] = [{"name": "idempotency", "config": dict(plugin)}]
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "api",
                "url": upstream_url,
                **service,
                "routes": [route, {"name": "reads", "paths": ["/api/"], "methods": ["GET"]}],
            }
        ],
    }


def gateway_env(**settings: str) -> dict[str, str]:
    """The environment for an `authgate-gateway` a test runs: none of the caller's authgate
    settings or decK variables, and `settings` as `AUTHGATE_GATEWAY_<NAME>`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHGATE_", "DECK_"))}
    return base | {f"AUTHGATE_GATEWAY_{k.upper()}": v for k, v in settings.items()}


COMMAND = str(Path(sys.executable).parent / "authgate-gateway")


def run_gateway(
    *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`authgate-gateway ARGS` through its real entry point, to completion; `env` is added
    to `gateway_env()` as spelled (`AUTHGATE_GATEWAY_KONG_ADDR=…`, `DECK_API_URL=…`)."""
    return subprocess.run(
        [COMMAND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=gateway_env() | env,
    )


class GatewayProcess(ServiceProcess):
    """`authgate-gateway serve FILE` through its real entry point."""

    def __init__(
        self, config: Mapping[str, Any], tmp: Path, env: Mapping[str, str] | None = None
    ) -> None:
        path = tmp / f"kong-{id(config)}.yml"
        path.write_text(yaml.safe_dump(dict(config)))
        env = gateway_env() if env is None else env
        super().__init__("gateway", env, tmp, verb=("serve", str(path)))
        wait_for_port(self.port, self.process, 15)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)
