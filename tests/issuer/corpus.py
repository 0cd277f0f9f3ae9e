"""The issuer's pen-test regression corpus (tests/corpus/issuer.yml), and what the tests
share to drive local accounts over HTTP."""

from __future__ import annotations

import secrets
from functools import cache
from typing import Any

import httpx
import yaml

from ..harness import REPO
from ..social import Social

CORPUS = REPO / "tests" / "corpus" / "issuer.yml"
LONG = "x" * 5000


@cache
def _load() -> dict[str, list[Any]]:
    loaded: dict[str, list[Any]] = yaml.safe_load(CORPUS.read_text())
    return loaded


def corpus(item: str) -> list[Any]:
    return list(_load()[item])


def fill(template: str, **values: str) -> str:
    """A corpus entry with its placeholders filled in (`{long}` is always known)."""
    return template.format(long=LONG, **values)


def fresh_email(prefix: str = "pt") -> str:
    return f"{prefix}{secrets.token_hex(5)}@example.test"


def local_form(social: Social, http: httpx.Client, **fields: str) -> dict[str, str]:
    """A local-account form's fields (the pre-login token its pages carry) plus `fields`.
    The token comes from the sign-up page, which is shown whether or not this browser is
    signed in (the sign-in page sends someone signed in straight on)."""
    page = http.get(f"{social.issuer.url}/register")
    csrf = page.text.split('name="login_csrf" value="')[1].split('"')[0]
    return {"login_csrf": csrf, **fields}


def register(social: Social, http: httpx.Client, email: str, password: str) -> httpx.Response:
    form = local_form(social, http, email=email, password=password, name="Pen Test")
    return http.post(f"{social.issuer.url}/register", data=form)


def sign_in(social: Social, http: httpx.Client, email: str, password: str) -> httpx.Response:
    form = local_form(social, http, email=email, password=password)
    return http.post(f"{social.issuer.url}/login/local", data=form)
