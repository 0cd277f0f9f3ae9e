"""`authgate-issuer migrate-keys` (issuer/migrate.py): data written by a release before the
shards, in the keys that release used, carried over and used by this release's code."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis

from authgate.contract import session_key
from issuer import keyspace
from issuer.keys import KeyStore
from issuer.outbox import Outbox, stream_of
from issuer.providers import Identity
from issuer.sessions import Sessions
from issuer.tokens import Tokens, TokenSettings
from issuer.users import Users

#: This test's own database, emptied first, of one server whatever the suite's topology:
#: the old layout lived on standalone or Sentinel, and the command refuses a Cluster.
MIGRATE_DB = 13
UID, SID, CID = (
    "oldUser_0123456789abcd",
    "oldSession-0123456789abcdefghijklmnopqrstu",
    "agc_oldclient012345",
)
REFRESH = "agr_an-old-refresh-token-0123456789abcdefghijklmnop"


def _old_layout(r: redis.Redis) -> None:
    """What the release before the shards wrote for one person, one session with a refresh
    token, one service account and one event waiting in the outbox."""
    now = time.time()
    r.hset(f"authgate:user:{UID}", mapping={
        "email": "old@example.test", "name": "Old", "roles": "", "status": "active",
        "created": str(now), "identities": "kakao:42", "email_verified": "1",
    })  # fmt: skip
    r.set("authgate:identity:kakao:42", UID)
    r.zadd("authgate:users", {UID: now})
    r.hset(f"authgate:session:{SID}", mapping={"sub": UID, "roles": "", "scope": "",
                                               "email": "old@example.test", "name": "Old"})  # fmt: skip
    r.pexpire(f"authgate:session:{SID}", 600_000)
    r.sadd(f"authgate:user-sessions:{UID}", SID)
    digest = hashlib.sha256(REFRESH.encode()).hexdigest()
    r.hset(f"authgate:refresh:{digest}", mapping={
        "state": "active", "sid": SID, "uid": UID, "client_id": "cli", "scope": "",
        "family": "fam0", "absolute_exp": str(now + 600),
    })  # fmt: skip
    r.pexpire(f"authgate:refresh:{digest}", 600_000)
    r.sadd("authgate:refresh-family:fam0", f"authgate:refresh:{digest}")
    r.hset(f"authgate:client:{CID}", mapping={"name": "old job", "kind": "service",
                                             "status": "active", "credentials": "[]"})  # fmt: skip
    r.xadd("authgate:outbox", Outbox("https://old.test").event("user.updated", UID, {"n": 1}))


def _migrate(url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "authgate-issuer"), "migrate-keys", *flags]
    return subprocess.run(command, env={"AUTHGATE_REDIS_URL": url, "PATH": ""},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_old_keys_are_carried_over_and_work(standalone_redis_url: str, tmp_path: Path) -> None:
    url = standalone_redis_url.rsplit("/", 1)[0] + f"/{MIGRATE_DB}"
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    _old_layout(r)
    done = _migrate(url)
    assert done.returncode == 0, done.stderr
    assert "authgate:user:*: 1 moved" in done.stdout and "1 event(s)" in done.stdout
    left = [k for k in r.scan_iter("authgate:*") if not k.startswith("authgate:{")]
    assert left == ["authgate:users"], left  # the listing keeps its name
    assert r.pttl(session_key(SID)) > 0  # its lifetime kept

    async def use_it() -> None:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        outbox = Outbox("https://issuer.test")
        users, sessions = Users(client, outbox), Sessions(client, 600, outbox)
        user, created = await users.upsert(Identity("kakao", "42", None, False, "Old"))
        assert (user.id, created) == (UID, False)  # the same person, found by the index
        session = await sessions.get(SID)
        assert session is not None and session.sub == UID
        keys = KeyStore(str(tmp_path / "keys"))
        keys.ensure("EdDSA")
        settings = TokenSettings("https://issuer.test", "aud", 300, 3600, 5.0)
        tokens = Tokens(client, keys, sessions, users, settings)
        assert "refresh_token" in await tokens.refresh(REFRESH)  # the old token rotates
        assert [s.sid for s in await sessions.listed(UID)] == [SID]
        await sessions.end_all(UID, "logout")
        assert not await client.exists(session_key(SID))
        await client.aclose()

    asyncio.run(use_it())
    first = json.loads(r.xrange(stream_of(UID), count=1)[0][1]["event"])
    assert (first["type"], first["subject"]) == ("user.updated", UID)  # the moved one
    assert r.hget(keyspace.client(CID), "name") == "old job"
    again = _migrate(url)
    assert again.returncode == 0 and "nothing from before the shards" in again.stdout
    r.flushdb()
    r.close()


def test_sessions_can_be_ended_instead_and_a_cluster_is_refused(standalone_redis_url: str) -> None:
    url = standalone_redis_url.rsplit("/", 1)[0] + f"/{MIGRATE_DB}"
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    _old_layout(r)
    done = _migrate(url, "--end-sessions")
    assert done.returncode == 0, done.stderr
    assert "authgate:session:*: 1 ended" in done.stdout
    assert r.exists(keyspace.user(UID)) and not r.exists(session_key(SID))
    assert not [k for k in r.scan_iter("authgate:*refresh*")]
    r.flushdb()
    r.close()
    refused = _migrate("redis+cluster://:pw@127.0.0.1:1,127.0.0.1:2")
    assert refused.returncode == 2 and "standalone Redis or Sentinel" in refused.stderr
    assert "pw@" not in refused.stderr
