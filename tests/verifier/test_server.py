"""What the HTTP server around the decision must give, whichever it is (AUTHGATE_SERVER):
keep-alive, pipelining in order, HTTP/1.0, malformed bytes answered 400 and closed,
a bound on header bytes, graceful shutdown."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from issuer.signing import SigningKey

from ..harness import JwksServer, Sessions, VerifierProcess, mint, verifier_env


def _read_answers(sock: socket.socket, count: int) -> list[bytes]:
    """`count` answers without bodies (the /verify ones), as their heads."""
    data = b""
    sock.settimeout(10)
    while data.count(b"\r\n\r\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return [part for part in data.split(b"\r\n\r\n") if part][:count]


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def _verify(token: str | None = None, *, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    auth = b"" if token is None else b"Authorization: Bearer " + token.encode() + b"\r\n"
    return (b"GET /verify HTTP/" + version + b"\r\nHost: v\r\nX-Original-URI: /docs/\r\n"
            + auth + extra + b"\r\n")  # fmt: skip


def test_keep_alive_and_pipelined_requests_answered_in_order(
    verifier: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    """Cached (answered at once), new (needs Redis) and refused requests, pipelined in one
    write: the answers come back in the order asked, on the one connection."""
    cached = mint(signing_key, sessions.create("piped"), "piped")
    with socket.create_connection(("127.0.0.1", verifier.port)) as sock:
        sock.sendall(_verify(cached))
        assert [_status(h) for h in _read_answers(sock, 1)] == [204]
        fresh = mint(signing_key, sessions.create("piped-new"), "piped-new")
        sock.sendall(_verify(fresh) + _verify(None) + _verify(cached) + _verify("x.y.z"))
        answers = _read_answers(sock, 4)
    assert [_status(h) for h in answers] == [204, 401, 204, 401]
    assert b"x-auth-user: piped-new" in answers[0].lower()
    assert b"x-auth-user: piped" in answers[2].lower()


def test_http_1_0_and_connection_close_end_the_connection(verifier: VerifierProcess) -> None:
    for request in (_verify(None, version=b"1.0"), _verify(None, extra=b"Connection: close\r\n")):
        with socket.create_connection(("127.0.0.1", verifier.port)) as sock:
            sock.sendall(request)
            sock.settimeout(10)
            data = b""
            while chunk := sock.recv(65536):  # ends only when the verifier closes
                data += chunk
        assert _status(data) == 401


def test_bytes_that_are_not_http_get_a_400_and_the_connection_closed(
    verifier: VerifierProcess,
) -> None:
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                    b"GET /verify HTTP/1.1\r\nHost: v\r\nContent-Length: -1\r\n\r\n",
                    b"GET /verify HTTP/9.9\r\n\r\n"):  # fmt: skip
        with socket.create_connection(("127.0.0.1", verifier.port)) as sock:
            sock.sendall(garbage)
            sock.settimeout(10)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 400 "), (garbage, data[:80])


def test_headers_past_the_limit_are_refused_not_an_error(
    verifier: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    """70 KiB of headers with a valid token: never a 204 from a truncated read, and never
    a status nginx turns into a 500."""
    token = mint(signing_key, sessions.create("bulky"), "bulky")
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 1000) for i in range(70))
    with socket.create_connection(("127.0.0.1", verifier.port)) as sock:
        sock.sendall(_verify(token, extra=filler) + _verify(token))
        answers = [_status(h) for h in _read_answers(sock, 2)]
    assert answers[0] in (204, 401)  # uvicorn has no limit: the decision runs (204)
    assert answers[1] == 204  # the connection goes on


def test_the_own_server_refuses_headers_past_its_limit(
    jwks_server: JwksServer, redis_url: str, logs: Path, sessions: Sessions,
    signing_key: SigningKey,
) -> None:  # fmt: skip
    env = verifier_env(jwks_server.jwks_url, redis_url, AUTHGATE_SERVER="protocol")
    process = VerifierProcess(env, logs)
    try:
        process.wait_ready()
        token = mint(signing_key, sessions.create("bulky"), "bulky")
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 1000) for i in range(70))
        with socket.create_connection(("127.0.0.1", process.port)) as sock:
            sock.sendall(_verify(token, extra=filler))
            (head,) = _read_answers(sock, 1)
        assert _status(head) == 401
        assert b"request headers over 65536 bytes" in head
    finally:
        process.stop()


def test_graceful_shutdown_answers_a_request_in_progress(
    jwks_server: JwksServer, redis_url: str, logs: Path
) -> None:
    """SIGTERM: idle keep-alive connections are closed, a request already begun is
    answered (with Connection: close), and the process exits 0. (uvicorn closes a
    request whose headers are not complete yet: only the own server promises this.)"""
    env = verifier_env(jwks_server.jwks_url, redis_url, AUTHGATE_SERVER="protocol")
    process = VerifierProcess(env, logs)
    process.wait_ready()
    idle = socket.create_connection(("127.0.0.1", process.port))
    busy = socket.create_connection(("127.0.0.1", process.port))
    try:
        idle.sendall(_verify(None))
        assert [_status(h) for h in _read_answers(idle, 1)] == [401]
        request = _verify(None)
        busy.sendall(request[:20])  # begun, not finished
        # Both connections are accepted before the signal: the idle one has answered.
        process.process.send_signal(signal.SIGTERM)
        idle.settimeout(10)
        assert idle.recv(65536) == b""  # closed by the verifier
        busy.sendall(request[20:])
        busy.settimeout(10)
        data = b""
        while chunk := busy.recv(65536):
            data += chunk
        assert _status(data) == 401
        assert b"connection: close" in data.lower()
        assert process.process.wait(timeout=15) == 0
    finally:
        idle.close()
        busy.close()
        process.stop()
