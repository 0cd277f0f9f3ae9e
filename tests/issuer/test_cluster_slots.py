"""Cluster-safe data (docs/scaling.md): every Lua script and MULTI must touch keys of one
hash slot, or a Redis Cluster refuses it (CROSSSLOT).

Each operation runs on real Redis while every script call and transaction is recorded;
the keys of a transaction are the server's own answer (`COMMAND GETKEYS`), WATCHed keys
included. The test proves they share a slot (issuer/keyspace.py: the shards).
tests/issuer/test_on_ha_redis.py runs the same operations on a real Sentinel setup and Cluster.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.crc import key_slot

from issuer.clients import SECRET, SERVICE, Clients, new_credential_id
from issuer.keys import KeyStore
from issuer.outbox import Outbox
from issuer.providers import Identity
from issuer.records import end_session, write_session
from issuer.sessions import Sessions
from issuer.tokens import Tokens, TokenSettings
from issuer.users import SUSPENDED, Users


@dataclass
class Stores:
    client: aioredis.Redis
    users: Users
    sessions: Sessions
    tokens: Tokens
    clients: Clients


def build_stores(client: aioredis.Redis, tmp_path: Path) -> Stores:
    """The issuer's stores on `client`, signing with a key of their own under `tmp_path`."""
    outbox = Outbox("https://issuer.test")
    users = Users(client, outbox)
    sessions = Sessions(client, 600, outbox)
    keys = KeyStore(str(tmp_path / "keys"))
    keys.ensure("EdDSA")
    settings = TokenSettings("https://issuer.test", "slots", 300, 3600, 5.0)
    return Stores(
        client, users, sessions, Tokens(client, keys, sessions, users, settings),
        Clients(client, outbox, sessions),
    )  # fmt: skip


class Recorder:
    """The key groups of every script call and transaction made while recording."""

    def __init__(self, redis_url: str) -> None:
        self.groups: list[tuple[str, list[str]]] = []
        self._server = redis.Redis.from_url(redis_url, decode_responses=True)

    def keys_of(self, args: tuple[Any, ...]) -> list[str]:
        try:
            found = self._server.command_getkeys(*args)
        except redis.ResponseError:  # a command without keys (PUBLISH, MULTI)
            return []
        return [str(k) for k in found]

    @contextmanager
    def recording(self) -> Iterator[None]:
        real_call, real_execute, real_watch = AsyncScript.__call__, Pipeline.execute, Pipeline.watch
        real_eval = aioredis.Redis.eval
        recorder = self

        async def evaluate(client: aioredis.Redis, script: str, numkeys: int, *rest: Any) -> Any:
            recorder.groups.append(("script", [str(k) for k in rest[:numkeys]]))
            return await real_eval(client, script, numkeys, *rest)

        async def call(
            script: AsyncScript, keys: Any = None, args: Any = None, client: Any = None
        ) -> Any:
            recorder.groups.append(("script", [str(k) for k in keys or []]))
            return await real_call(script, keys=keys, args=args, client=client)

        async def watch(pipe: Pipeline, *names: Any) -> Any:
            pipe._recorded_watch = [*getattr(pipe, "_recorded_watch", []), *map(str, names)]
            return await real_watch(pipe, *names)

        async def execute(pipe: Pipeline, raise_on_error: bool = True) -> Any:
            if pipe.is_transaction:
                keys = list(getattr(pipe, "_recorded_watch", []))
                for args, _ in pipe.command_stack:
                    keys += recorder.keys_of(args)
                recorder.groups.append(("MULTI", keys))
            return await real_execute(pipe, raise_on_error)

        with (
            mock.patch.object(AsyncScript, "__call__", call),
            mock.patch.object(Pipeline, "execute", execute),
            mock.patch.object(Pipeline, "watch", watch),
            mock.patch.object(aioredis.Redis, "eval", evaluate),
        ):
            yield

    def close(self) -> None:
        self._server.close()


def _identity() -> Identity:
    return Identity("slots", secrets.token_hex(8), None, False, "Slot Tester")


async def _user_upsert(s: Stores, record: Recorder) -> None:
    with record.recording():
        await s.users.upsert(_identity())


async def _user_link(s: Stores, record: Recorder) -> None:
    user, _ = await s.users.upsert(_identity())
    with record.recording():
        await s.users.link(user, _identity())


async def _user_roles(s: Stores, record: Recorder) -> None:
    user, _ = await s.users.upsert(_identity())
    with record.recording():
        await s.users.set_roles(user.id, frozenset({"editor"}), actor="test")


async def _session_create(s: Stores, record: Recorder) -> None:
    user, _ = await s.users.upsert(_identity())
    with record.recording():
        await s.sessions.create(user, "slots")


async def _session_end_all(s: Stores, record: Recorder) -> None:
    user, _ = await s.users.upsert(_identity())
    await s.sessions.create(user, "slots")
    with record.recording():
        await s.sessions.end_all(user.id, "logout")


async def _token_issue_and_refresh(s: Stores, record: Recorder) -> None:
    user, _ = await s.users.upsert(_identity())
    session = await s.sessions.create(user, "slots")
    assert session is not None
    with record.recording():
        pair = await s.tokens.issue(user, session, "slots")
        await s.tokens.refresh(pair["refresh_token"])


async def _client_create_and_suspend(s: Stores, record: Recorder) -> None:
    with record.recording():
        client = await s.clients.create("slots", SERVICE, frozenset(), frozenset(), "test")
        await s.clients.set_status(client.id, SUSPENDED, "test")


async def _user_roles_reach_sessions(s: Stores, record: Recorder) -> None:
    user, _ = await s.users.upsert(_identity())
    await s.sessions.create(user, "slots")
    await s.users.set_roles(user.id, frozenset({"editor"}), actor="test")
    changed = await s.users.get(user.id)
    assert changed is not None
    with record.recording():
        await s.sessions.update_all(changed)


async def _user_delete(s: Stores, record: Recorder) -> None:
    user, _ = await s.users.upsert(_identity())
    await s.users.link(user, _identity())
    user = await s.users.get(user.id) or user
    with record.recording():
        await s.users.delete(user, "test")
    again, created = await s.users.upsert(Identity("slots", user.identities[0].split(":")[1],
                                                   None, False, "Again"))  # fmt: skip
    assert created and again.id != user.id  # the index the deletion dropped is free


async def _local_account(s: Stores, record: Recorder) -> None:
    with record.recording():
        user = await s.users.create_local(f"{secrets.token_hex(6)}@slots.test", "L", "hash")
    assert user is not None


async def _client_token_and_suspend(s: Stores, record: Recorder) -> None:
    client = await s.clients.create("slots", SERVICE, frozenset(), frozenset(), "test")
    credential = new_credential_id()
    await s.clients.add_credential(client.id, credential, SECRET, "hash", "test")
    with record.recording():
        sid = await s.clients.start_session(client, credential, "", 60)
        assert sid is not None
        assert await s.clients.set_status(client.id, SUSPENDED, "test") == 1


async def _token_revoke(s: Stores, record: Recorder) -> None:
    user, _ = await s.users.upsert(_identity())
    session = await s.sessions.create(user, "slots")
    assert session is not None
    pair = await s.tokens.issue(user, session, "slots")
    with record.recording():
        assert await s.tokens.revoke(pair["refresh_token"])
    assert await s.sessions.get(session.sid) is None


async def _contract_records(s: Stores, record: Recorder) -> None:
    sid = secrets.token_urlsafe(16)
    with record.recording():
        await write_session(s.client, sid, sub="u", ttl=60)
        await end_session(s.client, sid)


Operation = Callable[[Stores, Recorder], Awaitable[None]]
OPERATIONS: list[Any] = [
    pytest.param(_contract_records, id="contract-session-scripts"),
    pytest.param(_user_upsert, id="user-upsert"),
    pytest.param(_user_link, id="user-link"),
    pytest.param(_user_roles, id="user-roles"),
    pytest.param(_session_create, id="session-create"),
    pytest.param(_session_end_all, id="session-end-all"),
    pytest.param(_token_issue_and_refresh, id="token-issue-refresh"),
    pytest.param(_client_create_and_suspend, id="client-create-suspend"),
    pytest.param(_user_roles_reach_sessions, id="user-roles-reach-sessions"),
    pytest.param(_user_delete, id="user-delete"),
    pytest.param(_local_account, id="local-account"),
    pytest.param(_client_token_and_suspend, id="client-token-suspend"),
    pytest.param(_token_revoke, id="token-revoke"),
]  # fmt: skip


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_script_and_transaction_touches_one_slot(
    operation: Operation, standalone_redis_url: str, tmp_path: Path
) -> None:
    # Recorded on one server, which runs a script across slots without complaint; a
    # Cluster would refuse it (tests/issuer/test_on_ha_redis.py runs the same operations
    # there).
    redis_url = standalone_redis_url

    async def main() -> list[tuple[str, list[str]]]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        stores = build_stores(client, tmp_path)
        record = Recorder(redis_url)
        try:
            await operation(stores, record)
        finally:
            record.close()
            await client.aclose()
        return record.groups

    groups = asyncio.run(main())
    assert groups, "the operation ran no script and no transaction"
    spread = [
        (kind, sorted(set(keys)))
        for kind, keys in groups
        if len({key_slot(k.encode()) for k in keys}) > 1
    ]
    assert not spread, f"keys of one script/transaction in several slots: {spread}"
