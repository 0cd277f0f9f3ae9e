"""JWKS handling: rotation without restart, bounded refetch, shared fetches, stale keys kept."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from issuer.signing import SigningKey
from stack.processes import wait_for_port

from ..harness import JwksServer, Sessions, VerifierProcess, mint, verifier_env
from ..polling import wait_until

StartVerifier = Callable[..., VerifierProcess]


@pytest.fixture
def own_jwks(signing_key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer()
    server.publish([signing_key])
    yield server
    server.close()


@pytest.fixture
def start_verifier(
    own_jwks: JwksServer, redis_url: str, logs: Path, verifier_server: str
) -> Iterator[StartVerifier]:
    """Start verifiers of this test's own, against `own_jwks`; stopped after the test."""
    started: list[VerifierProcess] = []

    def start(ready: bool = True, **env: str) -> VerifierProcess:
        env = {"AUTHGATE_SERVER": verifier_server, **env}
        process = VerifierProcess(verifier_env(own_jwks.jwks_url, redis_url, **env), logs)
        started.append(process)
        if ready:
            process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


def verify(url: str, token: str) -> int:
    return httpx.get(url + "/verify", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_new_key_is_picked_up_without_restart_and_a_retired_one_dropped(
    start_verifier: StartVerifier, own_jwks: JwksServer, sessions: Sessions, signing_key: SigningKey
) -> None:
    verifier = start_verifier(AUTHGATE_JWKS_REFRESH_INTERVAL="1", AUTHGATE_JWKS_KID_INTERVAL="0.5")
    sid = sessions.create("rot")
    new_key = SigningKey.generate("ES256", kid="rotated-in")
    assert verify(verifier.url, mint(new_key, sid, "rot")) == 401  # not published yet
    own_jwks.publish([signing_key, new_key])
    # The kid was tried moments ago; the refetch it may trigger is bounded per kid, so
    # poll with fresh tokens until the interval has passed.
    wait_until(lambda: verify(verifier.url, mint(new_key, sid, "rot")) == 204, 10,
               "new key never picked up", interval=0.05)  # fmt: skip
    own_jwks.publish([new_key])  # the old key retired
    wait_until(lambda: verify(verifier.url, mint(signing_key, sid, "rot")) == 401, 10,
               "retired key still accepted", interval=0.05)  # fmt: skip
    assert verify(verifier.url, mint(new_key, sid, "rot")) == 204
    assert "new kid(s): rotated-in" in verifier.log()


def test_an_unknown_kid_flood_barely_touches_the_jwks_endpoint(
    start_verifier: StartVerifier, own_jwks: JwksServer, sessions: Sessions
) -> None:
    verifier = start_verifier()
    before = own_jwks.requests
    sid = sessions.create("flood")
    started = time.monotonic()
    with httpx.Client() as http:
        statuses = set()
        for _ in range(400):
            forged = SigningKey.generate("EdDSA", kid=secrets.token_hex(8))
            statuses.add(
                http.get(
                    verifier.url + "/verify",
                    headers={"Authorization": f"Bearer {mint(forged, sid, 'flood')}"},
                ).status_code
            )
    elapsed = time.monotonic() - started
    fetches = own_jwks.requests - before
    assert statuses == {401}
    # At most one fetch per second (the global floor), whatever the number of kids.
    assert fetches <= elapsed + 2, (fetches, elapsed)


def test_concurrent_callers_share_one_fetch(
    start_verifier: StartVerifier, own_jwks: JwksServer, sessions: Sessions, signing_key: SigningKey
) -> None:
    verifier = start_verifier()
    sid = sessions.create("herd")
    new_key = SigningKey.generate("EdDSA", kid="herd-key")
    own_jwks.publish([signing_key, new_key])
    own_jwks.delay = 0.5  # long enough for every request to arrive during the fetch
    before = own_jwks.requests
    tokens = [mint(new_key, sid, "herd") for _ in range(24)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(lambda t: verify(verifier.url, t), tokens))
    assert statuses == [204] * 24
    assert own_jwks.requests - before == 1


def test_known_keys_survive_a_failing_jwks_endpoint(
    start_verifier: StartVerifier, own_jwks: JwksServer, sessions: Sessions, signing_key: SigningKey
) -> None:
    verifier = start_verifier()
    sid = sessions.create("stale")
    own_jwks.fail_status = 500
    unknown = SigningKey.generate("EdDSA", kid="during-outage")
    # A kid nobody has seen, while the endpoint fails: the verifier can't know; 503.
    assert verify(verifier.url, mint(unknown, sid, "stale")) == 503
    # The keys it held are kept: fresh (uncached) tokens still verify.
    for _ in range(3):
        assert verify(verifier.url, mint(signing_key, sid, "stale")) == 204
    assert httpx.get(verifier.url + "/readyz").status_code == 200


def test_jwks_down_at_start_then_recovered(
    start_verifier: StartVerifier, own_jwks: JwksServer, sessions: Sessions, signing_key: SigningKey
) -> None:
    own_jwks.fail_status = 503
    verifier = start_verifier(ready=False)
    wait_for_port(verifier.port, verifier.process)
    sid = sessions.create("late")
    assert httpx.get(verifier.url + "/readyz").status_code == 503
    assert verify(verifier.url, mint(signing_key, sid, "late")) == 503
    own_jwks.fail_status = None
    verifier.wait_ready()  # the background retry loads the keys
    assert verify(verifier.url, mint(signing_key, sid, "late")) == 204
