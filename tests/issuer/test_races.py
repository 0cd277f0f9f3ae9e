"""Races and confusions found in review: each fixed, each pinned by a test (real Redis)."""

from __future__ import annotations

import asyncio
import secrets
from contextlib import closing
from typing import Any
from unittest import mock

import httpx
import redis.asyncio as aioredis

from authgate import redis_client
from authgate.contract import session_key
from issuer import keyspace
from issuer.api import SESSION_GRANT
from issuer.outbox import Outbox
from issuer.providers import Identity
from issuer.sessions import Sessions
from issuer.users import SUSPENDED, Users

from ..social import KAKAO_USER, Social, browser, login, me


def _stores(redis_url: str) -> tuple[aioredis.Redis, Users, Sessions]:
    client = redis_client.connect(redis_url)
    outbox = Outbox("https://issuer.test")
    return client, Users(client, outbox), Sessions(client, 600, outbox)


def test_a_role_change_never_brings_an_ended_session_back(redis_url: str) -> None:
    async def main() -> None:
        client, users, sessions = _stores(redis_url)
        user, _ = await users.upsert(Identity("race", secrets.token_hex(8), None, False, "R"))
        session = await sessions.create(user, "race")
        assert session is not None
        rewrite = sessions._rewrite
        ended: list[str] = []

        async def end_it_meanwhile(**kwargs: Any) -> Any:
            # The session ends (logout, suspension) between the listing of the user's
            # sessions and the rewrite of this one.
            await sessions.end(session.sid, user.id, "logout")
            ended.append(session.sid)
            return await rewrite(**kwargs)

        await users.set_roles(user.id, frozenset({"editor"}), actor="test")
        changed = await users.get(user.id)
        assert changed is not None
        with mock.patch.object(sessions, "_rewrite", end_it_meanwhile):
            await sessions.update_all(changed)
        assert ended == [session.sid], "the end did not land inside the window"
        assert not await client.exists(session_key(session.sid))
        assert not await client.smembers(keyspace.user_sessions(user.id))
        await client.aclose()

    asyncio.run(main())


def test_no_session_for_a_user_suspended_mid_login(redis_url: str) -> None:
    """The suspension lands inside create's window: after the caller read the user as
    active and before the session is written. The script that writes it must see it, and
    create must end with no session."""

    async def main() -> None:
        client, users, sessions = _stores(redis_url)
        user, _ = await users.upsert(Identity("race", secrets.token_hex(8), None, False, "R"))
        start = sessions._start
        suspended: list[str] = []

        async def suspend_meanwhile(**kwargs: Any) -> Any:
            await users.set_status(user.id, SUSPENDED, actor="test")
            suspended.append(user.id)
            return await start(**kwargs)

        assert user.status == "active"
        with mock.patch.object(sessions, "_start", suspend_meanwhile):
            assert await sessions.create(user, "race") is None
        assert suspended == [user.id], "the suspension did not land inside the window"
        assert not await client.smembers(keyspace.user_sessions(user.id))
        # And with the stale, still-active user object alone, no session either.
        assert await sessions.create(user, "race") is None
        await client.aclose()

    asyncio.run(main())


def test_an_api_access_token_in_the_cookie_is_not_a_browser_session(social: Social) -> None:
    user = {**KAKAO_USER, "id": 10**9 + secrets.randbelow(10**12)}
    with browser() as http:
        assert login(social, http, "kakao", user).status_code == 303
        profile = me(social, http)
        csrf = {"X-CSRF-Token": profile["csrf_token"]}
        pair = http.post(
            f"{social.issuer.url}/token", data={"grant_type": SESSION_GRANT}, headers=csrf
        ).json()
        # Asking for more scope than the session has is refused.
        wider = http.post(
            f"{social.issuer.url}/token",
            data={"grant_type": SESSION_GRANT, "scope": "admin:write"},
            headers=csrf,
        )
        assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    with closing(httpx.Client(cookies={"authgate_session": pair["access_token"]})) as thief:
        assert thief.get(f"{social.issuer.url}/me").status_code == 401
        minted = thief.post(
            f"{social.issuer.url}/token", data={"grant_type": SESSION_GRANT}, headers=csrf
        )
        assert minted.status_code == 401
    # As a bearer token it still works for what bearer tokens are for.
    assert (
        httpx.get(
            f"{social.issuer.url}/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        ).status_code
        == 200
    )


def test_local_account_email_is_not_passed_upstream_unverified(social: Social) -> None:
    with browser() as http:
        page = http.get(f"{social.issuer.url}/login")
        login_csrf = page.text.split('name="login_csrf" value="')[1].split('"')[0]
        email = f"ceo{secrets.token_hex(3)}@corp.example"
        form = {"email": email, "password": "a long enough password", "login_csrf": login_csrf}
        assert http.post(f"{social.issuer.url}/register", data=form).status_code == 303
        form["login_csrf"] = (
            http.get(f"{social.issuer.url}/login")
            .text.split('name="login_csrf" value="')[1]
            .split('"')[0]
        )
        assert http.post(f"{social.issuer.url}/login/local", data=form).status_code == 303
        assert me(social, http)["email"] == email  # the account knows it ...
        sid = social.redis.smembers(keyspace.user_sessions(me(social, http)["id"])).pop()
    assert social.redis.hget(session_key(sid), "email") == ""  # ... upstreams don't see it
