"""`authgate-healthcheck`, through its entry point, against a real HTTP server: the
container health checks of compose/compose.yml depend on its exit codes."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.processes import free_port

COMMAND = str(Path(sys.executable).parent / "authgate-healthcheck")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *args], capture_output=True, text=True, timeout=30,
                          env=env, check=False)  # fmt: skip


def test_healthy_answer_is_exit_0(port: int) -> None:
    assert _run(f"http://127.0.0.1:{port}/readyz").returncode == 0


def test_default_url_is_the_service_port_readyz(port: int) -> None:
    assert _run(env={"AUTHGATE_PORT": str(port)}).returncode == 0
    env = {"AUTHGATE_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/other"}
    assert _run(env=env).returncode == 1


def test_unhealthy_or_unreachable_is_exit_1(port: int) -> None:
    answer = _run(f"http://127.0.0.1:{port}/not-ready")
    assert answer.returncode == 1 and "HTTP 503" in answer.stderr
    closed = _run(f"http://127.0.0.1:{free_port()}/readyz")
    assert closed.returncode == 1 and "authgate-healthcheck" in closed.stderr


def test_not_an_http_url_is_exit_2() -> None:
    answer = _run("file:///etc/passwd")
    assert answer.returncode == 2 and "not an http(s) URL" in answer.stderr
