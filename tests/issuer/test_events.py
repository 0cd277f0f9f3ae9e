"""User events through RabbitMQ: each action's event, nothing lost in an outage or when a
relay dies mid-publish, lifecycle events consumed, poison messages dead-lettered."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate import redis_client
from issuer import keyspace
from issuer.api import SESSION_GRANT
from issuer.outbox import stream_of

from ..amqp import (
    EventSink,
    Received,
    amqp_address,
    delete,
    publish,
    queue_depth,
    via_proxy,
)
from ..fake_providers import FakeProvider
from ..harness import TcpProxy
from ..identity import IssuerProcess, social_providers_yaml
from ..polling import poll, wait_until
from ..social import APP, CLIENT_ID, GITHUB_USER, KAKAO_USER, SECRET, Social, browser, login, me

#: A Redis of their own (`private_redis`): other issuers in the session run relays.
EVENTS_DB = 3


@dataclass
class Events:
    social: Social
    sink: EventSink
    proxy: TcpProxy
    names: dict[str, str]
    redis_url: str
    env: dict[str, str]
    amqp_url: str


@pytest.fixture(scope="module")
def events(
    private_redis: Callable[[int], str],
    amqp_url: str,
    logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Events]:
    url = private_redis(EVENTS_DB)
    client = redis_client.connect_blocking(url)
    client.delete(*map(keyspace.outbox, keyspace.ALL_SHARDS))
    client.delete(*map(keyspace.unroutable, keyspace.ALL_SHARDS))
    run = secrets.token_hex(4)
    names = {"exchange": f"authgate.events.t{run}", "inbound": f"member.events.t{run}",
             "queue": f"authgate.issuer.lifecycle.t{run}"}  # fmt: skip
    sink = EventSink(amqp_url, names["exchange"])
    proxy = TcpProxy(*amqp_address(amqp_url))
    work = tmp_path_factory.mktemp("events")
    fake = FakeProvider(CLIENT_ID, SECRET)
    (work / "providers.yml").write_text(
        social_providers_yaml({k: fake.endpoints(k) for k in ("kakao", "github")}, CLIENT_ID)
    )
    env = {
        "AUTHGATE_REDIS_URL": url, "AUTHGATE_KEYS_DIR": str(work / "keys"),
        "AUTHGATE_PROVIDERS_FILE": str(work / "providers.yml"), "AUTHGATE_RETURN_ORIGINS": APP,
        "AUTHGATE_TRUSTED_PROXIES": "127.0.0.1", "AUTHGATE_LOCAL_ACCOUNTS": "true",
        "FAKE_PROVIDER_SECRET": SECRET,
        "AUTHGATE_AMQP_URL": via_proxy(amqp_url, proxy),
        "AUTHGATE_EVENTS_EXCHANGE": names["exchange"], "AUTHGATE_INBOUND_EXCHANGE": names["inbound"],
        "AUTHGATE_INBOUND_QUEUE": names["queue"], "AUTHGATE_INBOUND_DELIVERY_LIMIT": "2",
        "AUTHGATE_RELAY_CLAIM_IDLE": "1",
    }  # fmt: skip
    issuer = IssuerProcess(env, logs, amqp_url=amqp_url)
    _wait_ready(
        issuer.url, lambda body: body["relay"]["connected"] and body["inbound"]["connected"]
    )
    yield Events(Social(fake, issuer, client), sink, proxy, names, url, env, amqp_url)
    issuer.stop()
    sink.close()
    proxy.close()
    fake.close()
    delete(
        amqp_url,
        [names["queue"], names["queue"] + ".dlq"],
        [names["exchange"], names["inbound"], names["queue"] + ".dlx"],
    )
    client.close()


def _wait_ready(issuer_url: str, check: Any, timeout: float = 20) -> dict[str, Any]:
    """The issuer's /readyz body, once `check` holds for it."""

    def read() -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = httpx.get(f"{issuer_url}/readyz").json()
        except httpx.HTTPError:
            return None
        return body

    body = poll(read, lambda b: b is not None and check(b), timeout, "issuer never got there")
    assert body is not None
    return body


def of(received: list[Received], subject: str) -> list[str]:
    return [r.routing_key for r in received if r.event["subject"] == subject]


def kakao(kakao_id: int | None = None) -> dict[str, Any]:
    user: dict[str, Any] = json.loads(json.dumps(KAKAO_USER))
    user["id"] = kakao_id or 10**9 + secrets.randbelow(10**12)
    return user


def test_every_action_emits_exactly_its_event(events: Events) -> None:
    """Sign-up, linking, a token pair and its refresh token reused, a second login, a
    logout and a failed login: each emits its event, in order, carrying no secret."""
    social, sink = events.social, events.sink
    with browser() as http:
        assert login(social, http, "kakao", kakao()).status_code == 303
        profile = me(social, http)
        uid = profile["id"]
        received = sink.wait_for(lambda r: len(of(r, uid)) >= 2)
        assert of(received, uid) == ["user.created", "user.login.succeeded"]
        _check_user_created(social, uid, received)
        code = _link_github(social, http, profile)
        secrets_seen = [code, http.cookies["authgate_session"], profile["csrf_token"],
                        *_reuse_a_refresh_token(social, http, profile["csrf_token"])]  # fmt: skip
    _login_then_logout(social, int(profile["identities"][0].split(":")[1]))
    social.fake.state.token_failure = (400, {"error": "invalid_grant", "error_code": "KOE320"})
    with browser() as http:  # the provider refuses the code
        assert login(social, http, "kakao", kakao()).status_code == 400
    expected = ["user.created", "user.login.succeeded", "platform.connected", "session.revoked",
                "user.login.succeeded", "user.logged_out", "session.revoked"]  # fmt: skip
    received = sink.wait_for(lambda r: len(of(r, uid)) >= len(expected))
    assert of(received, uid) == expected
    by_type = {r.routing_key: r.event for r in received if r.event["subject"] == uid}
    assert by_type["platform.connected"]["data"]["provider"] == "github"
    reasons = [
        r.event["data"]["reason"]
        for r in received
        if r.routing_key == "session.revoked" and r.event["subject"] == uid
    ]
    assert reasons == ["refresh_token_reuse", "logout"]
    failed = sink.wait_for(lambda r: any(e.routing_key == "user.login.failed" for e in r))
    assert [e.event["data"] for e in failed if e.routing_key == "user.login.failed"][-1] == {
        "method": "kakao",
        "reason": "invalid_grant",
    }
    for r in sink.events():  # no token, code, cookie or CSRF token ever travels in an event
        assert all(s not in r.body.decode() for s in secrets_seen)


def _check_user_created(social: Social, uid: str, received: list[Received]) -> None:
    """A CloudEvents 1.0 envelope, persistent, with the AMQP message id = the event id."""
    created = next(
        r for r in received if r.routing_key == "user.created" and r.event["subject"] == uid
    )
    event = created.event
    assert set(event) == {"specversion", "id", "source", "type", "time", "subject",
                          "datacontenttype", "data"}  # fmt: skip
    assert event["specversion"] == "1.0" and event["type"] == "user.created"
    assert event["source"] == social.issuer.url
    assert event["data"] == {
        "user_id": uid,
        "provider": "kakao",
        "email": "gildong@kakao.test",
        "name": "홍길동",
    }
    assert created.message_id == event["id"] and created.delivery_mode == 2
    assert created.content_type and created.content_type.startswith("application/cloudevents+json")


def _link_github(social: Social, http: httpx.Client, profile: dict[str, Any]) -> str:
    """Link a GitHub account to the signed-in user; the provider's code."""
    linked = http.post(f"{social.issuer.url}/link/github",
                       data={"csrf_token": profile["csrf_token"], "rd": f"{APP}/settings"})  # fmt: skip
    assert linked.status_code == 303
    github = {
        "user": {**GITHUB_USER["user"], "id": secrets.randbelow(10**9)},
        "emails": GITHUB_USER["emails"],
    }
    code = social.fake.grant(linked.headers["location"], github)
    state = linked.headers["location"].split("state=")[1].split("&")[0]
    back = http.get(f"{social.issuer.url}/callback/github", params={"code": code, "state": state})
    assert back.status_code == 303 and back.headers["location"] == f"{APP}/settings"
    assert me(social, http)["identities"] == [
        f"kakao:{profile['identities'][0].split(':')[1]}",
        f"github:{github['user']['id']}",
    ]
    return code


def _reuse_a_refresh_token(social: Social, http: httpx.Client, csrf: str) -> list[str]:
    """An API token pair, then its refresh token used again after the grace window: the
    session is revoked. The pair's tokens."""
    pair = http.post(f"{social.issuer.url}/token", data={"grant_type": SESSION_GRANT},
                     headers={"X-CSRF-Token": csrf}).json()  # fmt: skip
    refresh = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    assert httpx.post(f"{social.issuer.url}/token", data=refresh).status_code == 200
    from issuer.tokens import token_hash

    social.redis.hset(
        keyspace.refresh(token_hash(pair["refresh_token"])), "used_at", str(time.time() - 60)
    )
    assert httpx.post(f"{social.issuer.url}/token", data=refresh).status_code == 400
    return [pair["access_token"], pair["refresh_token"]]


def _login_then_logout(social: Social, kakao_id: int) -> None:
    with browser() as http:
        assert login(social, http, "kakao", kakao(kakao_id)).status_code == 303
        csrf = me(social, http)["csrf_token"]
        logout = http.post(f"{social.issuer.url}/logout", headers={"X-CSRF-Token": csrf})
        assert logout.status_code == 204


def test_admin_and_local_account_events(events: Events) -> None:
    social, sink = events.social, events.sink
    with browser() as http:
        page = http.get(f"{social.issuer.url}/login")
        login_csrf = page.text.split('name="login_csrf" value="')[1].split('"')[0]
        password = "a long enough password"
        email = f"events{secrets.token_hex(3)}@example.test"
        assert (
            http.post(
                f"{social.issuer.url}/register",
                data={"email": email, "password": password, "login_csrf": login_csrf},
            ).status_code
            == 303
        )
        signed = http.post(
            f"{social.issuer.url}/login/local",
            data={"email": email, "password": password, "login_csrf": login_csrf},
        )
        assert signed.status_code == 303  # registration signs nobody in (issue 12, 6)
        target = me(social, http)["id"]
    with browser() as admin_http:
        assert login(social, admin_http, "kakao", kakao()).status_code == 303
        admin = me(social, admin_http)
        assert social.issuer.cli("admin", "promote", admin["id"]).returncode == 0
        csrf = {"X-CSRF-Token": admin["csrf_token"]}
        assert (
            admin_http.put(
                f"{social.issuer.url}/admin/users/{target}/roles",
                json={"roles": ["editor"]},
                headers=csrf,
            ).status_code
            == 200
        )
        assert (
            admin_http.post(
                f"{social.issuer.url}/admin/users/{target}/suspend", headers=csrf
            ).status_code
            == 200
        )
        assert (
            admin_http.delete(f"{social.issuer.url}/admin/users/{target}", headers=csrf).status_code
            == 204
        )
    received = sink.wait_for(lambda r: "user.deleted" in of(r, target))
    assert of(received, target) == ["user.created", "user.login.succeeded", "user.updated", "user.updated",
                                    "session.revoked", "user.deleted"]  # fmt: skip
    updates = [
        r.event["data"]
        for r in received
        if r.routing_key == "user.updated" and r.event["subject"] == target
    ]
    assert updates == [{"user_id": target, "roles": ["editor"], "by": admin["id"]},
                       {"user_id": target, "status": "suspended", "by": admin["id"]}]  # fmt: skip
    assert password not in "".join(r.body.decode() for r in received)


def test_service_account_events_carry_no_secret(events: Events) -> None:
    """client.created, .credential.rotated (added, removed), .suspended, .updated and
    .deleted, in order, with the client id as subject (issue 18)."""
    social, sink = events.social, events.sink

    def cli(*args: str) -> dict[str, Any]:
        done = social.issuer.cli("clients", *args, "--json")
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    made = cli("create", "events-job", "--scope", "members:read")
    cid, secret = made["client_id"], made["client_secret"]
    second = cli("add-secret", cid)
    cli("remove-credential", cid, made["credentials"][0]["id"])
    cli("suspend", cid)
    cli("reactivate", cid)
    cli("delete", cid)
    received = sink.wait_for(lambda r: "client.deleted" in of(r, cid))
    assert of(received, cid) == [
        "client.created", "client.credential.rotated", "client.credential.rotated",
        "client.credential.rotated", "client.suspended", "client.updated", "client.deleted",
    ]  # fmt: skip
    created = next(r.event for r in received if r.routing_key == "client.created")
    assert created["data"] == {"client_id": cid, "name": "events-job", "kind": "service",
                               "roles": [], "scopes": ["members:read"], "by": "cli"}  # fmt: skip
    bodies = "".join(r.body.decode() for r in received)
    assert secret not in bodies and second["client_secret"] not in bodies
    assert "argon2" not in bodies


def test_rabbitmq_outage_loses_nothing(events: Events) -> None:
    social, sink = events.social, events.sink
    events.proxy.cut()
    _wait_ready(social.issuer.url, lambda body: not body["relay"]["connected"])
    subjects = []
    for _ in range(12):  # logins go on while RabbitMQ is away
        with browser() as http:
            assert login(social, http, "kakao", kakao()).status_code == 303
            subjects.append(me(social, http)["id"])
    waiting = _wait_ready(social.issuer.url, lambda body: body["outbox"]["waiting"] >= 24)
    assert waiting["ready"] is True
    metrics = httpx.get(f"{social.issuer.url}/metrics").text
    assert "authgate_issuer_relay_connected 0" in metrics
    events.proxy.restore()
    received = sink.wait_for(lambda r: all(len(of(r, s)) >= 2 for s in subjects), timeout=30)
    ids = [r.event["id"] for r in received if r.event["subject"] in subjects]
    assert len(set(ids)) == 24  # after dedupe by id, every event once
    assert all(of(received, s) == ["user.created", "user.login.succeeded"] for s in subjects)
    _wait_ready(
        social.issuer.url,
        lambda body: body["outbox"]["waiting"] == 0 and body["relay"]["connected"],
    )


def test_relay_killed_mid_publish_is_taken_over(
    events: Events, logs: Path, private_redis: Callable[[int], str]
) -> None:
    """A relay of its own reads events, publishes into a hung connection and is SIGKILLed;
    another relay takes its pending entries over and publishes them."""
    social = events.social
    extra_db = private_redis(EVENTS_DB + 1)
    client = redis_client.connect_blocking(extra_db)
    subject = f"relay-test-{uuid.uuid4().hex[:8]}"
    stream = stream_of(subject)
    client.delete(stream)
    proxy = TcpProxy(*amqp_address(events.amqp_url))
    env = {**social.issuer.env, "AUTHGATE_REDIS_URL": extra_db,
           "AUTHGATE_AMQP_URL": via_proxy(events.amqp_url, proxy), "AUTHGATE_RELAY_CLAIM_IDLE": "1"}  # fmt: skip
    command = [str(Path(sys.executable).parent / "authgate-issuer"), "events", "relay"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        # Connected and reading: a consumer appears in the group at its first XREADGROUP,
        # which the relay makes only once its channel and exchange are ready.
        wait_until(lambda: client.exists(stream) and client.xinfo_groups(stream)
                   and client.xinfo_consumers(stream, "relay"), 15,
                   "the relay never started reading", interval=0.05)  # fmt: skip
        proxy.pause()  # from here on, publishes are sent and never confirmed
        from issuer.outbox import Outbox

        outbox = Outbox("https://issuer.test")
        with client.pipeline(transaction=True) as pipe:  # all ten in one read of the relay's
            for n in range(10):
                pipe.xadd(
                    stream, outbox.event("user.updated", subject, {"user_id": subject, "n": n})
                )
            pipe.execute()
        wait_until(lambda: client.xpending(stream, "relay")["pending"] >= 10, 15,  # in flight
                   lambda: str(client.xpending(stream, "relay")), interval=0.05)  # fmt: skip
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        proxy.restore()
        second = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            received = events.sink.wait_for(
                lambda r: len({e.event["id"] for e in r if e.event["subject"] == subject}) == 10,
                timeout=30,
            )
            numbers = sorted(
                {e.event["data"]["n"] for e in received if e.event["subject"] == subject}
            )
            assert numbers == list(range(10))
            wait_until(lambda: not client.xlen(stream)
                       and not client.xpending(stream, "relay")["pending"], 10,
                       "the outbox was not emptied", interval=0.05)  # fmt: skip
        finally:
            second.terminate()
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        proxy.close()
        client.delete(stream)
        client.close()


def test_lifecycle_events_are_consumed_idempotently(events: Events) -> None:
    social = events.social
    with browser() as http:
        assert login(social, http, "kakao", kakao()).status_code == 303
        uid = me(social, http)["id"]
        event_id = str(uuid.uuid4())
        suspended = json.dumps({"specversion": "1.0", "id": event_id, "source": "member-service",
                                "type": "user.suspended", "subject": uid, "data": {}}).encode()  # fmt: skip
        for _ in range(2):  # delivered twice: processed once
            publish(
                events.amqp_url,
                events.names["inbound"],
                "user.suspended",
                suspended,
                message_id=event_id,
            )
        wait_until(lambda: http.get(f"{social.issuer.url}/me").status_code == 401, 10,
                   "the session did not end")  # fmt: skip
    received = events.sink.wait_for(lambda r: "session.revoked" in of(r, uid))
    time.sleep(0.3)  # a second (wrongly processed) copy would have produced its events by now
    assert of(events.sink.events(), uid).count("user.updated") == 1
    assert [
        r.event["data"]["by"]
        for r in received
        if r.routing_key == "user.updated" and r.event["subject"] == uid
    ] == [f"event:{event_id}"]


def test_poison_message_is_dead_lettered_without_blocking(events: Events) -> None:
    social = events.social
    with browser() as http:
        assert login(social, http, "kakao", kakao()).status_code == 303
        uid = me(social, http)["id"]
        publish(
            events.amqp_url,
            events.names["inbound"],
            "user.deleted",
            b"{this is not json",
            message_id="poison",
        )
        deleted = json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "member-service",
                              "type": "user.deleted", "subject": uid}).encode()  # fmt: skip
        publish(events.amqp_url, events.names["inbound"], "user.deleted", deleted)
        events.sink.wait_for(lambda r: "user.deleted" in of(r, uid))  # the good one went through
        assert http.get(f"{social.issuer.url}/me").status_code == 401
    wait_until(lambda: queue_depth(events.amqp_url, events.names["queue"] + ".dlq") >= 1, 15,
               "poison message never dead-lettered", interval=0.1)  # fmt: skip
    assert queue_depth(events.amqp_url, events.names["queue"]) == 0
    # A delivery limit of 2 allows two returns: the third failed delivery dead-letters it.
    assert (
        "authgate_issuer_inbound_failed_total 3" in httpx.get(f"{social.issuer.url}/metrics").text
    )


def test_events_tail_prints_events(events: Events) -> None:
    social = events.social
    command = [
        str(Path(sys.executable).parent / "authgate-issuer"),
        "events",
        "tail",
        "--routing-key",
        "user.login.*",
    ]
    env = {**social.issuer.env, "AUTHGATE_AMQP_URL": events.amqp_url}
    tail = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert tail.stderr is not None and "tailing" in tail.stderr.readline()
        with closing(browser()) as http:
            assert login(social, http, "kakao", kakao()).status_code == 303
            uid = me(social, http)["id"]
        assert tail.stdout is not None
        line = tail.stdout.readline()
        assert "user.login.succeeded" in line and uid in line
    finally:
        tail.terminate()
        tail.wait(timeout=10)


def test_inbound_body_claiming_another_action_than_its_routing_key_is_refused(
    events: Events,
) -> None:
    social = events.social
    with browser() as http:
        assert login(social, http, "kakao", kakao()).status_code == 303
        uid = me(social, http)["id"]
        before = queue_depth(events.amqp_url, events.names["queue"] + ".dlq")
        forged = json.dumps({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "member-service",
                             "type": "user.deleted", "subject": uid}).encode()  # fmt: skip
        publish(
            events.amqp_url, events.names["inbound"], "user.suspended", forged
        )  # bound as a suspension
        wait_until(lambda: queue_depth(events.amqp_url, events.names["queue"] + ".dlq") > before,
                   15, "the forged message was not refused", interval=0.1)  # fmt: skip
        assert (
            http.get(f"{social.issuer.url}/me").status_code == 200
        )  # neither deleted nor suspended


def test_relay_recreates_a_lost_consumer_group(events: Events) -> None:
    social = events.social
    # A Redis restart without persistence: streams and groups gone.
    social.redis.delete(*map(keyspace.outbox, keyspace.ALL_SHARDS))
    with browser() as http:
        assert login(social, http, "kakao", kakao()).status_code == 303
        uid = me(social, http)["id"]
    events.sink.wait_for(lambda r: "user.login.succeeded" in of(r, uid), timeout=30)
