"""Hostile API-client input (issue 18) from the regression corpus: token requests with
broken credentials, assertions and device codes, and codes typed on the device page.
Each is refused with a 4xx in RFC 6749 §5.2's shape (or on the form), never a 5xx, and
none gets a token."""

from __future__ import annotations

import base64
import re
from contextlib import closing
from typing import Any

import httpx
import pytest

from ..social import Social, browser
from .corpus import corpus, fill
from .test_clients import cli, service

ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
          "unsupported_grant_type", "invalid_scope", "rate_limited"}  # fmt: skip


@pytest.fixture(scope="module")
def names(social: Social) -> dict[str, str]:
    cid, secret = service(social)
    device = cli(social, "create", "attack-cli", "--device")["client_id"]
    long = base64.b64encode(b"x" * 6000).decode()
    return {"cid": cid, "credential": secret.removeprefix("ags_").split(".")[0],
            "device": device, "basic_long": long}  # fmt: skip


@pytest.mark.parametrize("attack", corpus("token_requests"), ids=lambda a: str(a)[:60])
def test_hostile_token_requests_are_refused_in_oauths_shape(
    social: Social, names: dict[str, str], attack: dict[str, Any]
) -> None:
    headers = {}
    if "authorization" in attack:
        headers["Authorization"] = fill(attack["authorization"], **names)
    form = {k: fill(str(v), **names) for k, v in attack["form"].items()}
    with closing(browser()) as http:
        answer = http.post(f"{social.issuer.url}/token", data=form, headers=headers)
    assert 400 <= answer.status_code < 500, (attack, answer.status_code, answer.text[:200])
    body = answer.json()
    assert body["error"] in ERRORS, body
    assert "access_token" not in body


def test_hostile_codes_on_the_device_page_are_said_on_the_form(
    social: Social, person: httpx.Client
) -> None:
    page = person.get(f"{social.issuer.url}/_authgate/device").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    for typed in corpus("user_codes"):
        answer = person.post(f"{social.issuer.url}/_authgate/device",
                             data={"csrf_token": csrf, "user_code": fill(typed)})  # fmt: skip
        assert answer.status_code == 400, (typed, answer.status_code)
        assert "That code isn" in answer.text, typed
        assert "<script>" not in answer.text  # kept, escaped
