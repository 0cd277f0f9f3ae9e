"""The caches are bounded (AUTHGATE_*_CACHE_SIZE and _BYTES) and only what was verified
gets in: a flood of distinct invalid tokens pushes no valid session out (issue 17)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from issuer.signing import SigningKey

from ..harness import JwksServer, Sessions, VerifierProcess, mint, verifier_env
from .test_ops import metric

TOKEN_MISS = 'authgate_verifier_cache_lookups_total{cache="token",result="miss"}'
SESSION_MISS = 'authgate_verifier_cache_lookups_total{cache="session",result="miss"}'


@pytest.fixture
def small_caches(
    jwks_server: JwksServer, redis_url: str, logs: Path, verifier_server: str
) -> Iterator[VerifierProcess]:
    env = verifier_env(jwks_server.jwks_url, redis_url, AUTHGATE_SERVER=verifier_server,
                       AUTHGATE_TOKEN_CACHE_SIZE="8", AUTHGATE_SESSION_CACHE_SIZE="8",
                       AUTHGATE_SESSION_CACHE_BYTES="100000", AUTHGATE_LOG_LEVEL="WARNING")  # fmt: skip
    process = VerifierProcess(env, logs)
    process.wait_ready()
    yield process
    process.stop()


def test_a_flood_of_invalid_tokens_evicts_no_valid_session(
    small_caches: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    url = small_caches.url + "/verify"
    valid = mint(signing_key, sessions.create("stays"), "stays")
    auth = {"Authorization": f"Bearer {valid}"}
    with httpx.Client() as http:
        assert http.get(url, headers=auth).status_code == 204  # now cached
        before = http.get(small_caches.url + "/metrics").text
        header, payload, _ = valid.split(".")
        ended = sessions.create("gone")
        gone = mint(signing_key, ended, "gone")
        sessions.end(ended)
        flood = (
            # Well-formed, each with its own (wrong) signature: never verified.
            [f"{header}.{payload}.{secrets.token_urlsafe(64)}" for _ in range(100)]
            # Not a token at all.
            + [secrets.token_urlsafe(40) for _ in range(50)]
            # Signed by our key, but for a session that ended: verified, never cached.
            + [gone]
        )
        for token in flood:
            answer = http.get(url, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401
        after = http.get(small_caches.url + "/metrics").text
        assert metric(after, "authgate_verifier_token_cache_evictions") == 0
        assert metric(after, "authgate_verifier_session_cache_evictions") == 0
        # The valid token is still answered from both caches: no new miss.
        for _ in range(3):
            assert http.get(url, headers=auth).status_code == 204
        last = http.get(small_caches.url + "/metrics").text
    assert metric(last, TOKEN_MISS) - metric(after, TOKEN_MISS) == 0
    assert metric(last, SESSION_MISS) - metric(after, SESSION_MISS) == 0
    assert metric(after, TOKEN_MISS) - metric(before, TOKEN_MISS) == 151  # each was tried


def test_valid_sessions_past_the_bounds_are_evicted_oldest_first(
    small_caches: VerifierProcess, sessions: Sessions, signing_key: SigningKey
) -> None:
    url = small_caches.url + "/verify"
    tokens = [mint(signing_key, sessions.create(f"many-{i}"), f"many-{i}") for i in range(12)]
    with httpx.Client() as http:
        for token in tokens:
            assert http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 204
        text = http.get(small_caches.url + "/metrics").text
    assert metric(text, "authgate_verifier_session_cache_entries") <= 8
    assert metric(text, "authgate_verifier_token_cache_entries") <= 8
    assert metric(text, "authgate_verifier_session_cache_evictions") >= 4
    assert 0 < metric(text, "authgate_verifier_session_cache_bytes") <= 100000


def test_the_byte_estimates_the_bounds_use_hold() -> None:
    """What a cached session and token are counted as is what they take (tracemalloc),
    within a margin, erring high: a byte bound then holds the memory it names."""
    from bench.memory import sessions_measured, tokens_measured

    for measure in (sessions_measured, tokens_measured):
        measured, estimate = measure(5000)
        assert 1.0 <= estimate / measured <= 1.25, (measure.__name__, measured, estimate)
