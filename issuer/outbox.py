"""User events, written to a Redis stream in the same atomic step as the change they report.

Every change of the issuer's (a user created, a login, a session revoked, …) queues its
event on the MULTI pipeline or Lua script that makes the change, so an event exists iff
its change happened. There is one stream per shard (issuer/keyspace.py), and an event goes
to the stream of its subject's shard: the user's or the client's, where the change it
reports is made. The relay (issuer/relay.py) publishes the streams to RabbitMQ.

Events are CloudEvents 1.0 in JSON (structured mode): `type` is the routing key
(`user.created`, `client.created`, …), `subject` the user's or the client's id, `data`
the details — never a token, code, secret or password.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import redis.asyncio as aioredis

from authgate.contract import shard_of

from . import keyspace

GROUP: Final = "relay"

USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DELETED = "user.deleted"
LOGIN_SUCCEEDED = "user.login.succeeded"
LOGIN_FAILED = "user.login.failed"
LOGGED_OUT = "user.logged_out"
SESSION_REVOKED = "session.revoked"
PLATFORM_CONNECTED = "platform.connected"
#: Someone registered with the email of an existing local account: the owner is to be told
#: (an email service consumes it), as the registration's answer can't say (issue 12, 6).
REGISTRATION_ATTEMPTED = "user.registration_attempted"
#: Service accounts (issuer/clients.py); the subject is the client id.
CLIENT_CREATED = "client.created"
CLIENT_UPDATED = "client.updated"
CLIENT_SUSPENDED = "client.suspended"
CLIENT_DELETED = "client.deleted"
CLIENT_CREDENTIAL_ROTATED = "client.credential.rotated"
TYPES: Final = (USER_CREATED, USER_UPDATED, USER_DELETED, LOGIN_SUCCEEDED, LOGIN_FAILED,
                LOGGED_OUT, SESSION_REVOKED, PLATFORM_CONNECTED,
                REGISTRATION_ATTEMPTED, CLIENT_CREATED, CLIENT_UPDATED, CLIENT_SUSPENDED,
                CLIENT_DELETED, CLIENT_CREDENTIAL_ROTATED)  # fmt: skip


class Outbox:
    def __init__(self, source: str) -> None:
        self.source = source

    def event(self, kind: str, subject: str, data: dict[str, Any]) -> dict[str, str]:
        """The stream entry of one event: its routing key and its CloudEvent JSON."""
        if kind not in TYPES:
            raise ValueError(f"unknown event type {kind!r}")
        cloudevent = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self.source,
            "type": kind,
            "time": datetime.fromtimestamp(time.time(), UTC).isoformat().replace("+00:00", "Z"),
            "subject": subject,
            "datacontenttype": "application/json",
            "data": data,
        }
        return {"routing_key": kind, "event": json.dumps(cloudevent, separators=(",", ":"))}

    def queue(
        self, pipe: aioredis.client.Pipeline, kind: str, subject: str, data: dict[str, Any]
    ) -> None:
        """Add the event to `pipe`: it is written exactly when the pipeline's change is."""
        pipe.xadd(stream_of(subject), self.event(kind, subject, data))

    async def emit(
        self, redis: aioredis.Redis, kind: str, subject: str, data: dict[str, Any]
    ) -> None:
        """An event that reports no change of state (a failed login)."""
        await redis.xadd(stream_of(subject), self.event(kind, subject, data))


def stream_of(subject: str) -> str:
    """The stream an event about `subject` (a user's or client's id) is written to."""
    return keyspace.outbox(shard_of(subject))


async def backlog(redis: aioredis.Redis) -> dict[str, int]:
    """Entries waiting (not yet confirmed by RabbitMQ), and those kept as unroutable."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in keyspace.ALL_SHARDS:
            pipe.xlen(keyspace.outbox(shard))
            pipe.xlen(keyspace.unroutable(shard))
        lengths = await pipe.execute()
    return {"waiting": sum(lengths[::2]), "unroutable": sum(lengths[1::2])}
