"""The issuer and a verifier on Redis Sentinel and on a Redis Cluster (issue 19, item 2):
1 master, 1 replica and 3 sentinels; 3 masters with a replica each; each started once per
test session (tests/conftest.py).

First the issuer's operations, each run on each (tests/issuer/test_cluster_slots.py proves
their keys share a slot; here the Cluster itself answers, CROSSSLOT or not). Then the
assembled behaviour through HTTP: an issuer process and a verifier process both given the
topology's URL, a person signing in with a provider and with a local account, their session
read by the verifier, a role change reaching it, a logout and a suspension refused at once,
a service account's token and its suspension, and the events of every shard relayed to
RabbitMQ.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate import redis_client
from authgate.contract import session_key
from issuer import keyspace

from ..amqp import EventSink
from ..harness import VerifierProcess, verifier_env
from ..social import APP, KAKAO_USER, Social, browser, login, me, social_stack
from .test_cluster_slots import OPERATIONS, Operation, build_stores


class _Unrecorded:
    """The operations of test_cluster_slots take a recorder; here nothing is recorded."""

    @contextmanager
    def recording(self) -> Iterator[None]:
        yield


@pytest.fixture(scope="module", params=["sentinel", "cluster"])
def ha_url(request: pytest.FixtureRequest) -> str:
    """The URL of the session's Sentinel setup, then of its Cluster."""
    return str(request.getfixturevalue(f"redis_{request.param}").url)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_operation_runs(operation: Operation, ha_url: str, tmp_path: Path) -> None:
    async def main() -> None:
        client = redis_client.connect(ha_url)
        try:
            await operation(build_stores(client, tmp_path), _Unrecorded())  # type: ignore[arg-type]
        finally:
            await client.aclose()

    asyncio.run(main())


@dataclass
class OnRedis:
    social: Social
    verifier: VerifierProcess
    sink: EventSink


@pytest.fixture(scope="module")
def on_redis(
    ha_url: str,
    amqp_url: str,
    logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OnRedis]:
    exchange = f"authgate.events.ha{secrets.token_hex(3)}"
    sink = EventSink(amqp_url, exchange)
    social = social_stack(
        ha_url, amqp_url, logs, tmp_path_factory.mktemp("on-ha-redis"),
        AUTHGATE_EVENTS_EXCHANGE=exchange,
    )  # fmt: skip
    issuer = social.issuer
    verifier = VerifierProcess(
        verifier_env(
            f"{issuer.url}/.well-known/jwks.json",
            ha_url,
            AUTHGATE_ISSUER=issuer.url,
        ),
        logs,
    )
    verifier.wait_ready()
    yield OnRedis(social, verifier, sink)
    verifier.stop()
    issuer.stop()
    sink.close()
    social.fake.close()


def _verify(on: OnRedis, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(
        on.verifier.url + "/verify", headers={"X-Original-URI": "/api/members", **headers}
    )


def _until_status(on: OnRedis, status: int, headers: dict[str, str]) -> int:
    """The verifier's answer once it is `status`, or after 5 s."""
    deadline = time.monotonic() + 5
    while (answer := _verify(on, headers).status_code) != status:
        if time.monotonic() > deadline:
            return answer
        time.sleep(0.02)
    return answer


def test_a_person_signs_in_and_out(on_redis: OnRedis) -> None:
    on = on_redis
    with closing(browser()) as http:
        person = {**KAKAO_USER, "id": 10**9 + secrets.randbelow(10**12)}
        assert login(on.social, http, "kakao", person).status_code == 303
        uid = me(on.social, http)["id"]
        cookie = {"Cookie": f"authgate_session={http.cookies['authgate_session']}"}
        allowed = _verify(on, cookie)
        assert allowed.status_code == 204, allowed.text
        assert allowed.headers["X-Auth-User"] == uid

        # The same person again: the same user (found through the identity's shard).
        with closing(browser()) as again:
            assert login(on.social, again, "kakao", person).status_code == 303
            assert me(on.social, again)["id"] == uid

        # A role given by the CLI reaches the live session (rewritten in the user's shard).
        assert on.social.issuer.cli("admin", "promote", uid).returncode == 0
        deadline = time.monotonic() + 5
        while "admin" not in _verify(on, cookie).headers.get("X-Auth-Roles", ""):
            assert time.monotonic() < deadline, "the new role never reached the verifier"
            time.sleep(0.05)

        csrf = me(on.social, http)["csrf_token"]
        logout = http.post(f"{on.social.issuer.url}/logout", headers={"X-CSRF-Token": csrf})
        assert logout.status_code < 400, logout.text
        assert _until_status(on, 401, cookie) == 401

    events = on.sink.wait_for(
        lambda got: (
            {"user.created", "user.login.succeeded", "user.logged_out"}
            <= {e.routing_key for e in got if e.event["subject"] == uid}
        ),
        timeout=30,
    )
    assert any(e.event["subject"] == uid for e in events)


def _form(on: OnRedis, http: httpx.Client, page: str, **fields: str) -> dict[str, str]:
    """A sign-in or sign-up form with its page's pre-login token."""
    answer = http.get(f"{on.social.issuer.url}{page}")
    csrf = answer.text.split('name="login_csrf" value="')[1].split('"')[0]
    return {"login_csrf": csrf, **fields}


def test_a_local_account_suspended_and_deleted(on_redis: OnRedis) -> None:
    on = on_redis
    email, password = f"c{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(12)
    with closing(browser()) as http:
        form = _form(on, http, "/register", email=email, password=password, name="Cluster")
        registered = http.post(f"{on.social.issuer.url}/register", data=form)
        assert registered.status_code == 303, registered.text[:300]
        form = _form(on, http, "/login", email=email, password=password, rd=f"{APP}/x")
        signed = http.post(f"{on.social.issuer.url}/login/local", data=form)
        assert signed.status_code == 303, signed.text[:300]
        uid = me(on.social, http)["id"]
        cookie = {"Cookie": f"authgate_session={http.cookies['authgate_session']}"}
        assert _verify(on, cookie).status_code == 204

    with closing(browser()) as admin:
        assert login(on.social, admin, "kakao", {**KAKAO_USER, "id": 10**13}).status_code == 303
        assert on.social.issuer.cli("admin", "promote", me(on.social, admin)["id"]).returncode == 0
        csrf = {"X-CSRF-Token": me(on.social, admin)["csrf_token"]}
        suspended = admin.post(f"{on.social.issuer.url}/admin/users/{uid}/suspend", headers=csrf)
        assert suspended.status_code < 300, suspended.text
        assert _until_status(on, 401, cookie) == 401
        # Deleted: the user first, then its index (another shard), so the address is free.
        deleted = admin.delete(f"{on.social.issuer.url}/admin/users/{uid}", headers=csrf)
        assert deleted.status_code < 300, deleted.text
    with closing(browser()) as http:
        form = _form(on, http, "/register", email=email, password=password, name="Again")
        assert http.post(f"{on.social.issuer.url}/register", data=form).status_code == 303
        form = _form(on, http, "/login", email=email, password=password, rd=f"{APP}/x")
        assert http.post(f"{on.social.issuer.url}/login/local", data=form).status_code == 303
        assert me(on.social, http)["id"] != uid  # a new account on the freed address


def test_a_service_account_token_and_its_suspension(on_redis: OnRedis) -> None:
    on = on_redis
    made = on.social.issuer.cli("clients", "create", "cluster-job", "--scope", "members:read",
                                "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    client = json.loads(made.stdout)
    granted = httpx.post(
        f"{on.social.issuer.url}/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert granted.status_code == 200, granted.text
    bearer = {"Authorization": f"Bearer {granted.json()['access_token']}",
              "X-Original-URI": "/api/stats"}  # fmt: skip
    answer = httpx.get(on.verifier.url + "/verify", headers=bearer)
    assert answer.status_code == 204, answer.text
    assert answer.headers["X-Auth-Client"] == client["client_id"]

    # Its session lies in the client's shard, on the master that serves that slot.
    payload = granted.json()["access_token"].split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    sid = claims["sid"]
    assert keyspace.client(client["client_id"]).split("}")[0] == session_key(sid).split("}")[0]

    suspended = on.social.issuer.cli("clients", "suspend", client["client_id"])
    assert suspended.returncode == 0, suspended.stderr
    deadline = time.monotonic() + 5
    while httpx.get(on.verifier.url + "/verify", headers=bearer).status_code != 401:
        assert time.monotonic() < deadline, "the suspended client's token still passes"
        time.sleep(0.02)
