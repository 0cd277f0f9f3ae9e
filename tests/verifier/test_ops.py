"""Health, readiness, metrics, and what happens when Redis is not there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from issuer.signing import SigningKey
from stack.processes import free_port, wait_for_port

from ..harness import JwksServer, Sessions, TcpProxy, VerifierProcess, mint, verifier_env
from ..polling import wait_until


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics"
    return float(match.group(1))


def test_health_and_readiness(verifier: VerifierProcess) -> None:
    assert httpx.get(verifier.url + "/healthz").text == "ok\n"
    ready = httpx.get(verifier.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "checks": {"redis": True, "keys": True, "session_events": True},
    }
    assert httpx.get(verifier.url + "/nope").status_code == 404


def test_metrics_count_decisions_and_cache_hits(
    verifier: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    auth = {"Authorization": f"Bearer {mint(signing_key, sessions.create('counted'), 'counted')}"}
    before = httpx.get(verifier.url + "/metrics").text
    for _ in range(3):
        assert httpx.get(verifier.url + "/verify", headers=auth).status_code == 204
    assert httpx.get(verifier.url + "/verify").status_code == 401
    after = httpx.get(verifier.url + "/metrics").text
    success = 'authgate_verifier_decisions_total{outcome="success",status="204"}'
    failure = 'authgate_verifier_decisions_total{outcome="failure",status="401"}'
    token_hit = 'authgate_verifier_cache_lookups_total{cache="token",result="hit"}'
    session_hit = 'authgate_verifier_cache_lookups_total{cache="session",result="hit"}'
    assert metric(after, success) - metric(before, success) == 3
    assert metric(after, failure) - metric(before, failure) == 1
    assert metric(after, token_hit) - metric(before, token_hit) == 2
    assert metric(after, session_hit) - metric(before, session_hit) == 2
    count = "authgate_verifier_decision_seconds_count"
    assert metric(after, count) - metric(before, count) == 4
    assert metric(after, 'authgate_verifier_decision_seconds_bucket{le="+Inf"}') == metric(
        after, count
    )
    assert metric(after, "authgate_verifier_session_events_subscribed") == 1


@pytest.fixture
def redisless_verifier(
    jwks_server: JwksServer, logs: Path, verifier_server: str
) -> Iterator[VerifierProcess]:
    """A verifier whose Redis is a port nothing listens on."""
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    env = verifier_env(jwks_server.jwks_url, nowhere, AUTHGATE_SERVER=verifier_server)
    process = VerifierProcess(env, logs)
    wait_for_port(process.port, process.process)
    yield process
    process.stop()


def test_redis_down_means_503_for_protected_and_still_204_for_public(
    redisless_verifier: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    url = redisless_verifier.url
    token = mint(signing_key, sessions.create("nobody-home"), "nobody-home")
    ready = httpx.get(url + "/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] is False
    assert (
        httpx.get(url + "/verify", headers={"Authorization": f"Bearer {token}"}).status_code == 503
    )
    # No credential: the answer needs no Redis, so it is the usual 401.
    assert httpx.get(url + "/verify").status_code == 401
    public = {"X-Original-URI": "/public/page", "Authorization": f"Bearer {token}"}
    response = httpx.get(url + "/verify", headers=public)
    assert response.status_code == 204
    assert "x-auth-user" not in response.headers
    metrics = httpx.get(url + "/metrics").text
    assert metric(metrics, 'authgate_verifier_decisions_total{outcome="error",status="503"}') == 1
    assert "auth error: redis" in redisless_verifier.log()


def test_redis_outage_then_recovery(
    jwks_server: JwksServer, standalone_redis_url: str, logs: Path, signing_key: SigningKey,
    verifier_server: str,
) -> None:  # fmt: skip
    # A TCP proxy cut in front of one server, whatever the suite's topology (a Sentinel's
    # and a Cluster's master killed: tests/verifier/test_failover.py).
    sessions = Sessions(standalone_redis_url)
    target = urlsplit(standalone_redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    through = f"redis://127.0.0.1:{proxy.port}{target.path}"
    env = verifier_env(jwks_server.jwks_url, through, AUTHGATE_SERVER=verifier_server)
    process = VerifierProcess(env, logs)
    try:
        process.wait_ready()
        sid = sessions.create("outage")
        auth = {"Authorization": f"Bearer {mint(signing_key, sid, 'outage')}"}
        url = process.url + "/verify"
        assert httpx.get(url, headers=auth).status_code == 204
        proxy.cut()
        # The subscription breaks with the connection, so the cached answer goes too:
        # the verifier can no longer know about revocations and says so with 503.
        wait_until(lambda: httpx.get(url, headers=auth).status_code == 503, 5,
                   "never noticed the outage")  # fmt: skip
        assert httpx.get(process.url + "/readyz").status_code == 503
        proxy.restore()
        process.wait_ready()  # reconnected and subscribed again, by itself
        assert httpx.get(url, headers=auth).status_code == 204
        sessions.end(sid)  # and revocation works on the new subscription
        wait_until(lambda: httpx.get(url, headers=auth).status_code == 401, 5,
                   "revocation lost after reconnect", interval=0.01)  # fmt: skip
    finally:
        process.stop()
        proxy.close()
