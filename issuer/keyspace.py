"""Where the issuer keeps what, in Redis: every key name is spelled here.

Each key carries a shard as its hash tag (authgate.contract.shard_key), so what one script
or transaction touches lies in one hash slot of a Redis Cluster:

authgate:{s}:user:<uid>                 hash: the user         s = shard of the uid
authgate:{s}:user-sessions:<uid>        set of the user's sids
authgate:{s}:session:<sid>              the contract's session record; a user's sids are
                                        drawn in the user's shard, a client's in its own
authgate:{s}:identity:<provider>:<sub>  → uid                  s = shard of "provider:sub"
authgate:{s}:local:<email>              → uid                  s = shard of the email
authgate:{s}:client:<cid>               hash: a service account or device client
authgate:{s}:client-sessions:<cid>      set of the sids of the client's tokens
authgate:{s}:refresh:<sha256>           a refresh token        s = shard of its hash,
authgate:{s}:refresh-family:<fam>       its family             drawn in its session's shard
authgate:{s}:outbox                     the events of shard s (issuer/outbox.py)
authgate:{s}:outbox:unroutable          the shard's events no queue was bound for
authgate:users, authgate:clients        listings by creation time (written after the
                                        account, in a step of their own)

A new user is drawn in the shard of the identity (or email) it is created by, so that the
index and the user are written in one script; an identity linked later may lie in another
shard (issuer/users.py says how those two writes stay safe without one transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from authgate.contract import SHARDS, shard_key, shard_of

USERS: Final = "authgate:users"
CLIENTS: Final = "authgate:clients"
ALL_SHARDS: Final = tuple(f"{n:x}" for n in range(SHARDS))


def user(uid: str) -> str:
    return shard_key(shard_of(uid), "user:" + uid)


def user_sessions(uid: str) -> str:
    return shard_key(shard_of(uid), "user-sessions:" + uid)


def identity(ref: str) -> str:
    """`ref`: "provider:subject"."""
    return shard_key(shard_of(ref), "identity:" + ref)


def local(email: str) -> str:
    email = email.lower()
    return shard_key(shard_of(email), "local:" + email)


def client(cid: str) -> str:
    return shard_key(shard_of(cid), "client:" + cid)


def client_sessions(cid: str) -> str:
    return shard_key(shard_of(cid), "client-sessions:" + cid)


def refresh(token_hash: str) -> str:
    return shard_key(shard_of(token_hash), "refresh:" + token_hash)


def family(fid: str) -> str:
    return shard_key(shard_of(fid), "refresh-family:" + fid)


def outbox(shard: str) -> str:
    return shard_key(shard, "outbox")


def unroutable(shard: str) -> str:
    return shard_key(shard, "outbox:unroutable")


def draw(shard: str, make: Callable[[], str], of: Callable[[str], str] = lambda x: x) -> str:
    """A new id from `make` whose shard (that of `of(id)`) is `shard`: ids are random, so
    one in 16 falls there; this draws until one does (16 draws on average)."""
    while shard_of(of(candidate := make())) != shard:
        pass
    return candidate
