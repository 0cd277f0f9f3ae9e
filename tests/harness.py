"""Real servers for the tests: a JWKS endpoint, an echo upstream, verifier processes.

Everything here listens on loopback and is driven over real sockets; readiness is
polled, never slept for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.cluster

from authgate import redis_client
from authgate.contract import session_key
from issuer.records import end_session, write_session
from issuer.signing import SigningKey, access_token_claims, jwks, new_session_id
from stack.processes import free_port, wait_for_port

from .polling import wait_until

ISSUER = "https://issuer.authgate.test"
AUDIENCE = "authgate-tests"
CLIENT_ID = "tests"
LOGIN_URL = "https://issuer.authgate.test/login"
REPO = Path(__file__).resolve().parent.parent
POLICY_FILE = REPO / "nginx" / "example-policy.yml"


class _Server:
    """A ThreadingHTTPServer on a free loopback port, run in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class JwksServer(_Server):
    """The issuer's `/.well-known/jwks.json` as a verifier sees it, with fault switches."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.requests = 0
        self.delay = 0.0
        self.fail_status: int | None = None
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    outer.requests += 1
                    delay, status, keys = outer.delay, outer.fail_status, list(outer.keys)
                if delay:
                    time.sleep(delay)
                body = b"unavailable" if status else json.dumps(jwks(keys)).encode()
                self.send_response(status or 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)

    @property
    def jwks_url(self) -> str:
        return self.url + "/.well-known/jwks.json"

    def publish(self, keys: Iterable[SigningKey]) -> None:
        with self.lock:
            self.keys = list(keys)

    def reset(self, keys: Iterable[SigningKey]) -> None:
        with self.lock:
            self.keys, self.requests, self.delay, self.fail_status = list(keys), 0, 0.0, None


class EchoUpstream(_Server):
    """The protected service: answers every request with the headers it received."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _echo(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = json.dumps(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": [[k.lower(), v] for k, v in self.headers.items()],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _echo

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)


def verifier_env(jwks_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(
        AUTHGATE_ISSUER=ISSUER,
        AUTHGATE_AUDIENCE=AUDIENCE,
        AUTHGATE_JWKS_URL=jwks_url,
        AUTHGATE_REDIS_URL=redis_url,
        AUTHGATE_POLICY_FILE=str(POLICY_FILE),
        AUTHGATE_LOGIN_URL=LOGIN_URL,
        AUTHGATE_SESSION_COOKIE="authgate_session",
        AUTHGATE_LOG_LEVEL="INFO",
    )
    env.update(overrides)
    return env


def verifier_command() -> str:
    return str(Path(sys.executable).parent / "authgate-verifier")


class ServiceProcess:
    """An authgate entry point (`authgate-<name>`) run as a process on a port of its own,
    logging to a file."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_dir: Path,
        *args: str,
        port: int | None = None,
        verb: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.env = dict(env)
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self._log = self.log_path.open("wb")
        command = str(Path(sys.executable).parent / f"authgate-{name}")
        self.process = subprocess.Popen(
            [command, *verb, "--port", str(self.port), *args],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class VerifierProcess(ServiceProcess):
    """`authgate-verifier` run through its real entry point."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, *args: str) -> None:
        super().__init__("verifier", env, log_dir, *args)

    def wait_ready(self, timeout: float = 15) -> None:
        wait_for_port(self.port, self.process, timeout)

        # Ready (keys held, Redis answers) and subscribed: session caching starts only then.
        def ready() -> bool:
            answer = httpx.get(self.url + "/readyz")
            return answer.status_code == 200 and b'"session_events": true' in answer.content

        wait_until(ready, timeout, lambda: f"verifier not ready and subscribed:\n{self.log()}")


class Sessions:
    """Creates and changes sessions in Redis the way the issuer does (issuer.records)."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    def _run(self, coro_fn: Any, *args: Any, **kwargs: Any) -> None:
        async def run() -> None:
            client = redis_client.connect(self.redis_url, timeout=5)
            try:
                await coro_fn(client, *args, **kwargs)
            finally:
                await client.aclose()

        asyncio.run(run())

    def create(
        self,
        sub: str = "user-1",
        *,
        roles: Iterable[str] = (),
        scope: str = "",
        email: str = "user@example.test",
        name: str = "Test User",
        ttl: float = 600,
        sid: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        sid = sid or new_session_id()
        self._run(
            write_session, sid, sub=sub, ttl=ttl, roles=roles, scope=scope, email=email,
            name=name, extra=extra,
        )  # fmt: skip
        return sid

    def end(self, sid: str) -> None:
        self._run(end_session, sid)

    def forget(self, sid: str) -> None:
        """Delete the session's record with no event published, as if the event was lost."""

        async def delete(client: Any, sid: str) -> None:
            await client.delete(session_key(sid))

        self._run(delete, sid)

    def cut_subscriptions(self) -> None:
        """CLIENT KILL TYPE pubsub wherever a subscriber may be connected: the one server,
        a Sentinel's master, every node of a Cluster."""
        client = redis_client.connect_blocking(self.redis_url, timeout=5)
        try:
            if isinstance(client, redis.cluster.RedisCluster):
                client.execute_command(
                    "CLIENT", "KILL", "TYPE", "pubsub", target_nodes=client.ALL_NODES
                )
            else:
                client.client_kill_filter(_type="pubsub")
        finally:
            client.close()


def mint(key: SigningKey, session: str, subject: str = "user-1", /, **claims: Any) -> str:
    """A token as the issuer would sign it; `claims` override or (with None) remove claims."""
    body = access_token_claims(
        issuer=ISSUER, audience=AUDIENCE, sub=subject, sid=session, client_id=CLIENT_ID
    )
    for name, value in claims.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return key.sign(body)


class TcpProxy:
    """A loopback TCP proxy the test can cut and restore, to fail a dependency for real."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open = True
        self.accepted = 0
        self._flowing = threading.Event()
        self._flowing.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if not self._open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones, as a dead host would."""
        self._open = False
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self._open = True
        self._flowing.set()

    def pause(self) -> None:
        """Hold every byte in flight while connections stay open: a hung peer."""
        self._flowing.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()
