"""Finding 10 of issue 12 (the issuer's part): its pages could be framed (clickjacking of
the sign-in form) and leaked their URLs in Referer; and a form post of any size was read.
Now every page sends CSP `frame-ancestors 'none'`, X-Frame-Options DENY and a
Referrer-Policy, and a body over 64 KiB is a 413 before it is read."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from ..social import Social, browser
from .corpus import corpus

LIMIT = 64 * 1024
#: Endpoints that check the caller before they read a body: a chunked body (no length to
#: judge up front) is never read there, and the answer is the 401.
CALLER_FIRST = ("/logout", "/admin/", "/link/", "/_authgate/device")


@pytest.mark.parametrize("path", corpus("pages"))
def test_pages_refuse_framing_and_keep_their_urls(social: Social, path: str) -> None:
    with browser() as http:
        page = http.get(f"{social.issuer.url}{path}")
    assert page.headers["content-type"].startswith("text/html"), (path, page.status_code)
    csp = page.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp and "*" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"


def _raw(social: Social, request: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a request over a real socket, part of its body only, and read the answer."""
    address = urlsplit(social.issuer.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and stopped reading: what we want
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def _head(method: str, path: str, social: Social, framing: str) -> bytes:
    host = urlsplit(social.issuer.url).netloc
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nX-Forwarded-For: 10.9.9.9\r\n"
        f"{framing}\r\n"
    ).encode()


@pytest.mark.parametrize("endpoint", corpus("body_endpoints"))
def test_an_oversized_declared_body_is_413_unread(social: Social, endpoint: str) -> None:
    method, path = endpoint.split()
    # Declares 100 MiB but sends 1 KiB: the answer comes without the rest being read.
    head = _head(method, path, social, f"Content-Length: {100 * 1024 * 1024}\r\n")
    answer = _raw(social, head, [b"a=" + b"x" * 1024])
    assert answer.startswith(b"HTTP/1.1 413 "), (endpoint, answer[:200])


@pytest.mark.parametrize("endpoint", corpus("body_endpoints"))
def test_an_oversized_chunked_body_is_413(social: Social, endpoint: str) -> None:
    method, path = endpoint.split()
    head = _head(method, path, social, "Transfer-Encoding: chunked\r\n")
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"x" * 16 * 1024)
    answer = _raw(social, head, [chunk] * 8 + [b"0\r\n\r\n"])
    expected = (
        (b"HTTP/1.1 401 ", b"HTTP/1.1 413 ") if path.startswith(CALLER_FIRST) else b"HTTP/1.1 413 "
    )
    assert answer.startswith(expected), (endpoint, answer[:200])


def test_a_form_under_the_limit_is_still_read(social: Social) -> None:
    with browser() as http:
        answer = http.post(f"{social.issuer.url}/revoke", data={"token": "agr_" + "x" * 8000})
    assert answer.status_code == 200
