"""Both ends of the wire, byte-exact, for the gateway's attack tests (issue 12).

`RawUpstream` is the service behind `serve`: it records the request line exactly as it
arrived (no library between it and the socket may tidy the target) and reads bodies of
either framing to the end, so a test can tell a complete request from a cut one.
`send` is a client that puts the given target on the wire untouched (httpx would resolve
dot segments and re-encode it first).
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "gateway.yml"


def corpus(section: str) -> Any:
    """One section of tests/corpus/gateway.yml, the regression corpus of attack inputs."""
    return yaml.safe_load(CORPUS.read_text())[section]


@dataclass
class Seen:
    line: str  # the request line as received
    target: str
    headers: dict[str, str]
    size: int = 0
    sha256: str = ""
    complete: bool = False  # the whole body (Content-Length bytes, or the last chunk) came


@dataclass
class RawUpstream:
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def targets(self) -> list[str]:
        with self._lock:
            return [s.target for s in self.seen]

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while self._one(conn, reader):
                pass
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def _one(self, conn: socket.socket, reader: Any) -> bool:
        line = reader.readline(65537)
        if not line:
            return False
        headers: dict[str, str] = {}
        while (raw := reader.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        text = line.decode("latin-1").rstrip("\r\n")
        parts = text.split(" ")
        seen = Seen(text, parts[1] if len(parts) == 3 else "", headers)
        with self._lock:
            self.seen.append(seen)
        digest = hashlib.sha256()
        for chunk in _body(reader, headers):
            seen.size += len(chunk)
            digest.update(chunk)
        seen.sha256, seen.complete = digest.hexdigest(), True
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
        return True


def _body(reader: Any, headers: dict[str, str]) -> Iterable[bytes]:
    """The body's bytes; raises ValueError when the connection ends before the body does."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int(reader.readline(1024).split(b";")[0].strip() or b"x", 16)
            if size == 0:
                while reader.readline(65537) not in (b"\r\n", b""):
                    pass
                return
            yield from _exactly(reader, size)
            reader.readline(3)
    yield from _exactly(reader, int(headers.get("content-length") or 0))


def _exactly(reader: Any, size: int) -> Iterable[bytes]:
    while size > 0:
        chunk = reader.read(min(size, 1 << 20))
        if not chunk:
            raise ValueError("connection closed mid-body")
        size -= len(chunk)
        yield chunk


def send(
    port: int,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | Iterable[bytes] = b"",
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """One request with `target` written to the wire byte for byte; (status, headers, body).

    `body` is sent as given (an iterable: piece by piece, framed by the caller's headers);
    the gateway may answer and close before all of it went, which is not an error here.
    """
    head = f"{method} {target} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode("utf-8", "surrogateescape"))
        try:
            for piece in [body] if isinstance(body, bytes) else body:
                sock.sendall(piece)
        except OSError:
            pass  # answered early (413) and closed: the answer is still to be read
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        answer = {k.lower(): v for k, v in response.getheaders()}
        return response.status, answer, response.read()
