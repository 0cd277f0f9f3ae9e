"""The device authorization grant (RFC 8628) against the running issuer: a command-line
tool asks, polls, and gets the person's tokens once they approve on the page; each way it
can end (pending, slow down, denied, expired, used) answers as §3.5 says."""

from __future__ import annotations

import re
import secrets
from contextlib import closing
from typing import Any

import httpx
import jwt
import pytest

from authgate.contract import session_key
from issuer.device_flow import device_key

from ..social import Social, browser, me
from .test_clients import cli

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def tool(social: Social) -> str:
    made = cli(social, "create", f"acme-cli {secrets.token_hex(2)}", "--device",
               "--scope", "repo:read", "--scope", "repo:write")  # fmt: skip
    assert made["kind"] == "device" and made["credentials"] == []
    cid: str = made["client_id"]
    return cid


def start(social: Social, tool: str, scope: str | None = None) -> dict[str, Any]:
    fields = {"client_id": tool, **({"scope": scope} if scope else {})}
    with closing(browser()) as http:
        answer = http.post(f"{social.issuer.url}/device_authorization", data=fields)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def poll(social: Social, tool: str, device_code: str) -> httpx.Response:
    with closing(browser()) as http:
        return http.post(f"{social.issuer.url}/token", data={
            "grant_type": GRANT, "device_code": device_code, "client_id": tool})  # fmt: skip


def may_poll_now(social: Social, device_code: str) -> None:
    """Let the next poll through without waiting out the interval (the record's own
    field: the test stands in for the passing of time, which it can't inject into another
    process)."""
    social.redis.hset(device_key(device_code), "next_poll", 0)


def answer(
    social: Social, person: httpx.Client, user_code: str, decision: str | None
) -> httpx.Response:
    page = person.get(f"{social.issuer.url}/_authgate/device", params={"user_code": user_code})
    assert page.status_code == 200, page.text
    assert f'value="{user_code}"' in page.text  # filled in from verification_uri_complete
    fields = {"csrf_token": CSRF.search(page.text).group(1), "user_code": user_code}  # type: ignore[union-attr]
    if decision is not None:
        fields["decision"] = decision
    return person.post(f"{social.issuer.url}/_authgate/device", data=fields)


def test_the_whole_flow_gives_the_person_tokens_and_a_session_they_can_see(
    social: Social, tool: str, person: httpx.Client
) -> None:
    flow = start(social, tool, "repo:read")
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", flow["user_code"])
    assert flow["verification_uri"] == f"{social.issuer.url}/_authgate/device"
    assert flow["verification_uri_complete"].endswith(f"?user_code={flow['user_code']}")
    assert flow["expires_in"] == 600 and flow["interval"] == 5
    pending = poll(social, tool, flow["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    hurried = poll(social, tool, flow["device_code"])  # sooner than the interval
    assert hurried.json()["error"] == "slow_down"
    confirm = answer(social, person, flow["user_code"], None)
    assert confirm.status_code == 200 and "acme-cli" in confirm.text and "repo:read" in confirm.text
    assert flow["user_code"] in confirm.text  # to compare with the device (§5.4)
    done = answer(social, person, flow["user_code"], "allow")
    assert done.status_code == 200 and "signed in on your device" in done.text
    may_poll_now(social, flow["device_code"])
    tokens = poll(social, tool, flow["device_code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["refresh_token"] and body["scope"] == "repo:read"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    uid = me(social, person)["id"]
    assert claims["sub"] == uid and claims["client_id"] == tool
    record = social.redis.hgetall(session_key(claims["sid"]))
    assert record["sub"] == uid and record["client"] == tool and record["scope"] == "repo:read"
    assert record.get("kind", "user") == "user"  # the person's, not the tool's
    account = person.get(f"{social.issuer.url}/_authgate/account").text
    assert "acme-cli" in account and "device code" in account
    # A code yields tokens once.
    assert poll(social, tool, flow["device_code"]).json()["error"] == "invalid_grant"
    # The person ends it from their account page: the tool's tokens stop.
    csrf = CSRF.search(account).group(1)  # type: ignore[union-attr]
    ended = person.post(f"{social.issuer.url}/_authgate/sessions/end",
                        data={"csrf_token": csrf, "sid": claims["sid"]})  # fmt: skip
    assert ended.status_code == 303
    assert not social.redis.exists(session_key(claims["sid"]))


def test_suspending_the_tool_ends_the_sessions_people_made_through_it(
    social: Social, person: httpx.Client
) -> None:
    tool = cli(social, "create", "short-lived-cli", "--device")["client_id"]
    flow = start(social, tool)
    answer(social, person, flow["user_code"], "allow")
    may_poll_now(social, flow["device_code"])
    access = poll(social, tool, flow["device_code"]).json()["access_token"]
    sid = jwt.decode(access, options={"verify_signature": False})["sid"]
    assert social.redis.exists(session_key(sid))
    cli(social, "suspend", tool)
    assert not social.redis.exists(session_key(sid))
    assert start_refused(social, tool) == "invalid_client"
    browser_session = person.get(f"{social.issuer.url}/me")
    assert browser_session.status_code == 200  # the person's own browser session stays


def start_refused(social: Social, tool: str) -> str:
    with closing(browser()) as http:
        answer = http.post(f"{social.issuer.url}/device_authorization", data={"client_id": tool})
    assert answer.status_code == 401
    error: str = answer.json()["error"]
    return error


def test_denied_expired_unknown_and_other_clients_codes(
    social: Social, tool: str, person: httpx.Client
) -> None:
    denied = start(social, tool)
    assert "Sign-in denied" in answer(social, person, denied["user_code"], "deny").text
    may_poll_now(social, denied["device_code"])
    assert poll(social, tool, denied["device_code"]).json()["error"] == "access_denied"
    late = start(social, tool)
    social.redis.hset(device_key(late["device_code"]), "expires", 0)  # time has passed
    assert poll(social, tool, late["device_code"]).json()["error"] == "expired_token"
    gone = answer(social, person, late["user_code"], "allow")
    assert gone.status_code == 400 and "expired" in gone.text
    assert poll(social, tool, "made-up").json()["error"] == "invalid_grant"
    other = cli(social, "create", "other-cli", "--device")["client_id"]
    mine = start(social, tool)
    assert poll(social, other, mine["device_code"]).json()["error"] == "invalid_grant"
    wider = httpx.post(f"{social.issuer.url}/device_authorization",
                       data={"client_id": tool, "scope": "admin"})  # fmt: skip
    assert wider.json()["error"] == "invalid_scope"


def test_the_page_needs_a_signed_in_person_a_csrf_token_and_limits_guessing(
    social: Social, tool: str, person: httpx.Client
) -> None:
    with closing(browser()) as stranger:
        away = stranger.get(f"{social.issuer.url}/_authgate/device?user_code=BCDF-GHJK")
    assert away.status_code == 303
    assert away.headers["location"] == "/login?rd=%2F_authgate%2Fdevice%3Fuser_code%3DBCDF-GHJK"
    flow = start(social, tool)
    forged = person.post(f"{social.issuer.url}/_authgate/device",
                         data={"user_code": flow["user_code"], "decision": "allow"})  # fmt: skip
    assert forged.status_code == 403
    page = person.get(f"{social.issuer.url}/_authgate/device").text
    csrf = CSRF.search(page).group(1)  # type: ignore[union-attr]
    said = []
    for _ in range(11):
        guess = "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(8))
        tried = person.post(f"{social.issuer.url}/_authgate/device",
                            data={"csrf_token": csrf, "user_code": guess})  # fmt: skip
        assert tried.status_code == 400
        said.append(tried.text)
    assert "Too many attempts" in said[-1] and "Too many attempts" not in said[0]
    # Even the right code is not looked at past the limit.
    right = person.post(f"{social.issuer.url}/_authgate/device",
                        data={"csrf_token": csrf, "user_code": flow["user_code"]})  # fmt: skip
    assert "Too many attempts" in right.text
