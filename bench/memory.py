"""What the verifier's caches hold in memory: bytes per cached session and per cached
token, measured with tracemalloc over 100 000 entries built by the verifier's own code,
beside the estimate the byte bounds use; then eviction under a byte bound.

    .venv/bin/python -m bench.memory [--entries 100000]

Sessions are records as `SessionStore` caches them (verifier.sessions.build_record, with
an email, a name, two roles and a scope); tokens are claims as `TokenVerifier` caches them,
keyed by a real EdDSA token's bytes.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from typing import Any

from authgate.bounded import BoundedCache
from authgate.tokens import Claims
from authgate.tokens import weigh as token_weight
from issuer.signing import SigningKey, access_token_claims, new_session_id
from verifier.sessions import SessionRecord, build_record
from verifier.sessions import weigh as session_weight


def fields(i: int) -> dict[str, str]:
    return {
        "sub": f"user-{i:08d}",
        "email": f"user-{i:08d}@example.test",
        "name": f"User Number {i}",
        "roles": "member editor",
        "scope": "openid api:read",
    }


def sessions_measured(count: int) -> tuple[float, float]:
    """(bytes per cached session by tracemalloc, by the estimate)."""
    sids = [new_session_id() for _ in range(count)]  # the sid arrives with the request
    rows = [fields(i) for i in range(count)]  # what Redis answered: freed after use
    cache: BoundedCache[str, SessionRecord] = BoundedCache(count + 1, 1 << 40, session_weight)
    now = time.time()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for sid, row in zip(sids, rows, strict=True):
        cache.put(sid, build_record(sid, row, now + 60))
    measured = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    return measured, cache.bytes / count


def tokens_measured(count: int) -> tuple[float, float]:
    key = SigningKey.generate("EdDSA")
    sid = new_session_id()
    claims = access_token_claims(
        issuer="https://issuer.example.test",
        audience="api",
        sub="user-00000001",
        sid=sid,
        client_id="web",
        lifetime=600,
    )
    token = key.sign(claims).encode()
    # Distinct tokens of the same length (signing 100 000 would take minutes); each made
    # while traced, as the request's header bytes are, which the cache then keeps.
    payloads = [
        json.dumps({"sub": f"user-{i:08d}", "sid": sid, "client_id": "web"}) for i in range(count)
    ]
    cache: BoundedCache[bytes, Claims] = BoundedCache(count + 1, 1 << 40, token_weight)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, payload in enumerate(payloads):
        decoded: dict[str, Any] = json.loads(payload)  # as verify() makes its strings
        claims_kept = Claims(
            decoded["sub"], decoded["sid"], time.time() + 600, decoded["client_id"]
        )
        cache.put(token[:-12] + b"%012d" % i, claims_kept)
    measured = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    return measured, cache.bytes / count


def eviction(count: int) -> None:
    """A byte bound of a tenth of what `count` sessions weigh: what stays, what went."""
    now = time.time()
    probe = build_record("x" * 22, fields(0), now)
    bound = session_weight("x" * 22, probe) * count // 10
    cache: BoundedCache[str, SessionRecord] = BoundedCache(count, bound, session_weight)
    started = time.perf_counter()
    for i in range(count):
        sid = new_session_id()
        cache.put(sid, build_record(sid, fields(i), now + 60))
    took = time.perf_counter() - started
    print(
        f"\neviction: {count} sessions put into a cache bounded to {bound} bytes:"
        f" {len(cache)} kept ({cache.bytes} bytes estimated), {cache.evictions} evicted,"
        f" {took / count * 1e6:.1f} us per put including the record's build"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=100_000, help="entries per cache")
    args = parser.parse_args()
    print(f"{'cache':<10}{'entries':>9}{'bytes/entry (tracemalloc)':>28}{'estimate':>10}")
    measured, estimate = sessions_measured(args.entries)
    print(f"{'sessions':<10}{args.entries:>9}{measured:>28.0f}{estimate:>10.0f}")
    measured, estimate = tokens_measured(args.entries)
    print(f"{'tokens':<10}{args.entries:>9}{measured:>28.0f}{estimate:>10.0f}")
    eviction(args.entries)


if __name__ == "__main__":
    main()
