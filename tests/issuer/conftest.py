"""The browsers the issuer tests sign in with: an admin's (module-wide) and a person's."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from ..social import KAKAO_USER, Social, browser, login, me


def signed_in(social: Social) -> httpx.Client:
    """A browser of its own address, signed in with Kakao as a new person."""
    http = browser()
    user = {**KAKAO_USER, "id": 10**9 + secrets.randbelow(10**12)}
    assert login(social, http, "kakao", user).status_code == 303
    return http


@pytest.fixture(scope="module")
def admin(social: Social) -> Iterator[httpx.Client]:
    """A person with the admin role (given by the CLI), sending their CSRF token."""
    with closing(signed_in(social)) as http:
        promoted = social.issuer.cli("admin", "promote", me(social, http)["id"])
        assert promoted.returncode == 0, promoted.stderr
        http.headers["X-CSRF-Token"] = me(social, http)["csrf_token"]
        yield http


@pytest.fixture
def person(social: Social) -> Iterator[httpx.Client]:
    with closing(signed_in(social)) as http:
        yield http
