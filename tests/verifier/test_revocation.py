"""Revocation and role changes reach every verifier at once; a lost subscription drops the cache."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from issuer.signing import SigningKey

from ..harness import JwksServer, Sessions, VerifierProcess, mint, verifier_env
from ..polling import wait_until

#: The contract's promise: a revocation is enforced everywhere within this.
DEADLINE = 0.100


@pytest.fixture
def second_verifier(
    jwks_server: JwksServer, redis_url: str, logs: Path, verifier_server: str
) -> Iterator[VerifierProcess]:
    env = verifier_env(jwks_server.jwks_url, redis_url, AUTHGATE_SERVER=verifier_server)
    process = VerifierProcess(env, logs)
    process.wait_ready()
    yield process
    process.stop()


def poll_until(
    url: str, headers: dict[str, str], status: int, since: float, http: httpx.Client
) -> float:
    """Seconds from `since` until `url` answers `status`; fails after 5 s."""
    while True:
        if http.get(url, headers=headers).status_code == status:
            return time.perf_counter() - since
        assert time.perf_counter() - since < 5, f"never answered {status}"


def test_revocation_is_enforced_by_every_verifier_within_100ms(
    verifier: VerifierProcess, second_verifier: VerifierProcess, nginx: str,
    sessions: Sessions, signing_key: SigningKey,
) -> None:  # fmt: skip
    sid = sessions.create("revoked")
    auth = {"Authorization": f"Bearer {mint(signing_key, sid, 'revoked')}"}
    targets = [verifier.url + "/verify", second_verifier.url + "/verify", nginx + "/api/items"]
    with httpx.Client() as http:
        for url in targets:  # warm every cache: the answer now comes from memory
            assert http.get(url, headers=auth).status_code in (200, 204)
            assert http.get(url, headers=auth).status_code in (200, 204)
        started = time.perf_counter()
        sessions.end(sid)
        delays = [poll_until(url, auth, 401, started, http) for url in targets]
    assert max(delays) <= DEADLINE, delays


def test_role_change_is_enforced_within_100ms(
    nginx: str, sessions: Sessions, signing_key: SigningKey
) -> None:
    sid = sessions.create("promoted", roles=["viewer"])
    auth = {"Authorization": f"Bearer {mint(signing_key, sid, 'promoted')}"}
    with httpx.Client() as http:
        assert http.get(nginx + "/admin/x", headers=auth).status_code == 403
        started = time.perf_counter()
        sessions.create("promoted", roles=["admin"], sid=sid)
        granted = poll_until(nginx + "/admin/x", auth, 200, started, http)
        started = time.perf_counter()
        sessions.create("promoted", roles=["viewer"], sid=sid)
        withdrawn = poll_until(nginx + "/admin/x", auth, 403, started, http)
    assert granted <= DEADLINE and withdrawn <= DEADLINE, (granted, withdrawn)


def test_session_expiry_in_redis_ends_the_cached_session(
    verifier: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    sid = sessions.create("short", ttl=0.5)
    auth = {"Authorization": f"Bearer {mint(signing_key, sid, 'short')}"}
    with httpx.Client() as http:
        assert http.get(verifier.url + "/verify", headers=auth).status_code == 204
        started = time.perf_counter()
        assert poll_until(verifier.url + "/verify", auth, 401, started, http) < 2


def test_losing_the_subscription_drops_the_cache(
    verifier: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    sid = sessions.create("gap")
    auth = {"Authorization": f"Bearer {mint(signing_key, sid, 'gap')}"}
    with httpx.Client() as http:
        assert http.get(verifier.url + "/verify", headers=auth).status_code == 204
        log_before = verifier.log().count("subscription lost")
        sessions.cut_subscriptions()
        wait_until(lambda: verifier.log().count("subscription lost") > log_before, 5,
                   "loss never noticed", interval=0.01)  # fmt: skip
        # An event published while unsubscribed is missed (a session deleted without
        # one); the dropped cache makes the verifier ask Redis instead of trusting what
        # it had.
        sessions.forget(sid)
        assert http.get(verifier.url + "/verify", headers=auth).status_code == 401
        # And it subscribes again by itself.
        wait_until(lambda: b'"session_events": true' in http.get(verifier.url + "/readyz").content,
                   5, "never resubscribed", interval=0.01)  # fmt: skip


def test_every_worker_of_a_multi_worker_verifier_enforces_revocation(
    jwks_server: JwksServer, redis_url: str, logs: Path, sessions: Sessions,
    signing_key: SigningKey, verifier_server: str,
) -> None:  # fmt: skip
    env = verifier_env(jwks_server.jwks_url, redis_url, AUTHGATE_SERVER=verifier_server)
    process = VerifierProcess(env, logs, "--workers", "2")
    try:
        process.wait_ready()
        sid = sessions.create("workers")
        auth = {"Authorization": f"Bearer {mint(signing_key, sid, 'workers')}"}
        url = process.url + "/verify"
        # New connections are spread over the workers by the kernel; enough of them
        # warm both workers' caches.
        for _ in range(40):
            assert httpx.get(url, headers=auth).status_code == 204
        started = time.perf_counter()
        sessions.end(sid)
        with httpx.Client() as http:
            poll_until(url, auth, 401, started, http)
        elapsed = time.perf_counter() - started
        statuses = {httpx.get(url, headers=auth).status_code for _ in range(40)}
        assert statuses == {401}
        assert elapsed <= DEADLINE, elapsed
        assert process.log().count("session events: subscribed") == 2
    finally:
        process.stop()
