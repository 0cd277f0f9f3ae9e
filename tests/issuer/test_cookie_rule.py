"""The issuer reads a session cookie sent twice as the verifier does (issue 12, finding
10): the same value twice is one cookie; two different values are refused, whichever
comes first (tests/verifier/test_hostile_input.py has the verifier's side)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx

from ..social import KAKAO_USER, Social, browser, login


def _kakao() -> dict[str, Any]:
    user: dict[str, Any] = json.loads(json.dumps(KAKAO_USER))
    user["id"] = 10**9 + secrets.randbelow(10**12)
    return user


def _session_cookie(social: Social) -> tuple[str, str]:
    with browser() as http:
        assert login(social, http, "kakao", _kakao()).status_code == 303
        name = next(c for c in http.cookies.jar if c.name.endswith("authgate_session"))
        return name.name, name.value or ""


def test_two_different_session_cookies_are_refused_by_the_issuer(social: Social) -> None:
    name, mine = _session_cookie(social)
    _, planted = _session_cookie(social)
    me = f"{social.issuer.url}/me"
    assert httpx.get(me, headers={"Cookie": f"{name}={mine}"}).status_code == 200
    assert httpx.get(me, headers={"Cookie": f"{name}={mine}; {name}={mine}"}).status_code == 200
    for both in (f"{name}={planted}; {name}={mine}", f"{name}={mine}; {name}={planted}"):
        assert httpx.get(me, headers={"Cookie": both}).status_code == 401, both
