"""The verifier answers nginx 2xx, 401 or 403 whatever a client sends (issue 12, findings
3 and 10): bytes an HTTP parser would refuse, a credential cookie sent twice, headers in
authgate's namespace, and clients too slow to finish a request."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authgate.cookies import AmbiguousCookie, find_cookie
from issuer.signing import SigningKey

from ..harness import JwksServer, Sessions, VerifierProcess, mint, verifier_env
from ..polling import wait_until
from ..rawhttp import request

CORPUS = yaml.safe_load((Path(__file__).parent.parent / "corpus" / "headers.yml").read_text())


def _bytes(escaped: str) -> bytes:
    return escaped.encode("latin-1").decode("unicode_escape").encode("latin-1")


def _verify(verifier: VerifierProcess, headers: list[tuple[bytes, bytes]], path: bytes = b"/docs/") -> int:  # fmt: skip
    base = [(b"X-Original-URI", path), (b"X-Original-Method", b"GET")]
    return request(verifier.port, b"/verify", base + headers).status


@pytest.mark.parametrize("value", CORPUS["bad_credentials"])
def test_a_control_character_in_authorization_is_a_401(verifier: VerifierProcess, value: str) -> None:  # fmt: skip
    assert _verify(verifier, [(b"Authorization", _bytes(value))]) == 401


@pytest.mark.parametrize("value", CORPUS["bad_cookies"])
def test_a_control_character_in_cookie_is_a_401(verifier: VerifierProcess, value: str) -> None:
    assert _verify(verifier, [(b"Cookie", _bytes(value))]) == 401


def test_through_nginx_a_control_character_is_never_a_500(nginx: str) -> None:
    port = int(nginx.rsplit(":", 1)[1])
    for value in CORPUS["bad_credentials"]:
        answer = request(port, b"/api/items", [(b"Authorization", _bytes(value))])
        assert answer.status == 401, (value, answer.status)


HEADER_BYTES = st.binary(min_size=0, max_size=40).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"").strip(b" \t")
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(authorization=HEADER_BYTES, cookie=HEADER_BYTES)
def test_fuzz_credential_headers_get_401_or_less_never_an_error(
    verifier: VerifierProcess, authorization: bytes, cookie: bytes
) -> None:
    headers = [(b"Authorization", authorization), (b"Cookie", cookie)]
    assert _verify(verifier, [h for h in headers if h[1]]) == 401
    assert _verify(verifier, [h for h in headers if h[1]], b"/public/x") in (200, 204)


def test_one_rule_for_a_session_cookie_sent_twice() -> None:
    """The verifier and the issuer both read it with authgate.cookies.find_cookie."""
    assert find_cookie("a=1; authgate_session=x; b=2", "authgate_session") == "x"
    assert find_cookie("authgate_session=x; authgate_session=x", "authgate_session") == "x"
    assert find_cookie("xauthgate_session=x", "authgate_session") is None
    with pytest.raises(AmbiguousCookie):
        find_cookie("authgate_session=x; authgate_session=y", "authgate_session")


def test_two_different_session_cookies_are_refused(
    verifier: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    mine = mint(signing_key, sessions.create("owner"), "owner")
    planted = mint(signing_key, sessions.create("attacker"), "attacker")
    cookie = f"authgate_session={mine}".encode()
    assert _verify(verifier, [(b"Cookie", cookie)]) in (200, 204)
    for both in (f"authgate_session={planted}; authgate_session={mine}",
                 f"authgate_session={mine}; authgate_session={planted}"):  # fmt: skip
        assert _verify(verifier, [(b"Cookie", both.encode())]) == 401


@pytest.mark.parametrize("name", CORPUS["forged"])
def test_a_client_header_in_authgates_namespace_is_refused(
    nginx: str, verifier: VerifierProcess, name: str, sessions: Sessions, signing_key: SigningKey
) -> None:
    token = mint(signing_key, sessions.create("forger", roles=["admin"]), "forger")
    forged = (name.encode(), b"admin")
    auth = (b"Authorization", f"Bearer {token}".encode())
    assert _verify(verifier, [auth]) in (200, 204)
    assert _verify(verifier, [auth, forged]) == 403
    answer = request(int(nginx.rsplit(":", 1)[1]), b"/public/x", [forged])
    assert answer.status == 403, answer.body  # never forwarded to the upstream


@pytest.fixture(scope="module")
def impatient(
    jwks_server: JwksServer, redis_url: str, logs: Path, verifier_server: str
) -> Iterator[VerifierProcess]:
    env = verifier_env(jwks_server.jwks_url, redis_url, AUTHGATE_HEADER_TIMEOUT="1",
                       AUTHGATE_BODY_TIMEOUT="1", AUTHGATE_SERVER=verifier_server)  # fmt: skip
    process = VerifierProcess(env, logs)
    process.wait_ready()
    yield process
    process.stop()


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slowloris_connections_are_closed_and_others_served(impatient: VerifierProcess) -> None:
    """Twenty clients each send part of a request's headers and then a byte now and
    then: each is cut off once its headers are overdue, and a normal request meanwhile
    is answered at once."""
    slow = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", impatient.port))
        sock.sendall(b"GET /verify HTTP/1.1\r\nHost: x\r\nX-Original-URI: /")
        sock.setblocking(False)
        slow.append(sock)
    idle = socket.create_connection(("127.0.0.1", impatient.port))  # sends nothing at all
    idle.setblocking(False)
    started = time.monotonic()
    try:
        assert httpx.get(impatient.url + "/healthz", timeout=2).status_code == 200
        deadline = started + 6
        while time.monotonic() < deadline and not all(_closed(s) for s in [*slow, idle]):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"a")  # a trickle: never the end of the headers
            time.sleep(0.2)
        assert all(_closed(s) for s in [*slow, idle]), "a slow client kept its connection"
        assert time.monotonic() - started < 5  # 1 s allowed, checked every quarter second
    finally:
        for sock in [*slow, idle]:
            sock.close()


def test_a_stalled_body_is_cut_off(impatient: VerifierProcess) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        sock.settimeout(5)
        started = time.monotonic()
        wait_until(lambda: _closed_or_answered(sock), 5, "a stalled body held the connection")
        assert time.monotonic() - started < 4


def _closed_or_answered(sock: socket.socket) -> bool:
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return False
    if data:  # the verifier may answer before reading a body it does not need
        while data := sock.recv(65536):
            pass
    return True
