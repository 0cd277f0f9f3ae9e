"""What an upstream may trust in the headers nginx forwards (issue 12, finding 5): where
the request came from is what nginx saw, method overrides are gone, and the session
cookie stays between the browser and authgate while the other cookies pass."""

from __future__ import annotations

from pathlib import Path

import yaml

from issuer.signing import SigningKey

from ..harness import Sessions, mint
from ..rawhttp import request

CORPUS = yaml.safe_load((Path(__file__).parent.parent / "corpus" / "headers.yml").read_text())


def _echoed(nginx: str, path: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    answer = request(int(nginx.rsplit(":", 1)[1]), path, headers)
    assert answer.status == 200, (answer.status, answer.body[:300])
    received: dict[str, list[str]] = {}
    for name, value in answer.json()["headers"]:
        received.setdefault(name, []).append(value)
    return received


def test_client_forwarding_and_override_headers_are_replaced(nginx: str) -> None:
    sent = [(k.encode(), str(v).encode()) for k, v in CORPUS["replaced"].items()]
    received = _echoed(nginx, b"/public/x", sent)
    assert received["x-forwarded-for"] == ["127.0.0.1"]
    assert received["x-real-ip"] == ["127.0.0.1"]
    assert received["x-forwarded-host"] == ["127.0.0.1"]
    assert received["x-forwarded-proto"] == ["http"]
    assert received["x-forwarded-port"] == [nginx.rsplit(":", 1)[1]]
    assert received["forwarded"] == ["for=127.0.0.1;host=127.0.0.1;proto=http"]
    for gone in ("x-forwarded-prefix", "x-http-method-override", "x-http-method",
                 "x-method-override", "x-original-url", "x-original-host"):  # fmt: skip
        assert gone not in received, gone


def test_the_session_cookie_is_not_forwarded_the_others_are(
    nginx: str, sessions: Sessions, signing_key: SigningKey
) -> None:
    token = mint(signing_key, sessions.create("cookie-user"), "cookie-user")
    for cookie in (f"theme=dark; authgate_session={token}; lang=ko",
                   f"authgate_session={token}; theme=dark; lang=ko",
                   f"theme=dark; lang=ko; authgate_session={token}"):  # fmt: skip
        received = _echoed(nginx, b"/docs/", [(b"Cookie", cookie.encode())])
        assert received["x-auth-user"] == ["cookie-user"]  # signed in by that cookie
        forwarded = received["cookie"][0]
        assert "authgate_session" not in forwarded and token not in forwarded
        assert {c.strip() for c in forwarded.split(";") if c.strip()} == {"theme=dark", "lang=ko"}
