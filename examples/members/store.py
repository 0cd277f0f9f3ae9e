"""Members kept in SQLite (WAL mode), one connection per thread.

The service calls these methods through `asyncio.to_thread`, so the event loop never waits
on the disk. WAL lets readers go on while one writer commits; writers take the lock at
`BEGIN IMMEDIATE` so two never deadlock upgrading a read lock, and wait for each other up
to the busy timeout. `synchronous=FULL`: a committed write survives a power cut, which is
what the consumer's ack after the commit relies on.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    display_name TEXT NOT NULL,
    bio TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS members_by_owner ON members (owner, created_at, id);
-- Events already handled: recorded in the transaction that acts on them, so a
-- redelivered event finds its id here and changes nothing.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    processed_at TEXT NOT NULL
);
"""
BUSY_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class Member:
    id: str
    owner: str
    display_name: str
    bio: str | None
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "display_name": self.display_name,
            "bio": self.bio,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


_COLUMNS = "id, owner, display_name, bio, created_at, updated_at"
#: The fields a PATCH may change (owner and timestamps are the service's).
EDITABLE = ("display_name", "bio")


class Store:
    def __init__(
        self,
        path: Path,
        *,
        now: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.path = path
        self._now = now
        self._new_id = new_id
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        """Create the file and schema (at start, before any request)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connection()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema {version}, newer than this service's")
        db.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for db in connections:
            db.close()

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # check_same_thread=False only so that close() may close every thread's
            # connection at the end; each is used by its own thread alone.
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )  # fmt: skip
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _stamp(self) -> str:
        return self._now().isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def ping(self) -> None:
        self._connection().execute("SELECT 1").fetchone()

    def create(self, owner: str, display_name: str, bio: str | None) -> Member:
        stamp = self._stamp()
        member = Member(self._new_id(), owner, display_name, bio, stamp, stamp)
        with self._write() as db:
            db.execute(
                f"INSERT INTO members ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant
                (member.id, owner, display_name, bio, stamp, stamp),
            )
        return member

    def get(self, member_id: str) -> Member | None:
        row = (
            self._connection()
            .execute(f"SELECT {_COLUMNS} FROM members WHERE id = ?", (member_id,))  # noqa: S608
            .fetchone()
        )
        return Member(*row) if row else None

    def list(self, owner: str | None) -> list[Member]:
        """`owner`'s members, or everyone's when `owner` is None; oldest first."""
        db = self._connection()
        if owner is None:
            rows = db.execute(f"SELECT {_COLUMNS} FROM members ORDER BY created_at, id")  # noqa: S608
        else:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM members WHERE owner = ? ORDER BY created_at, id",  # noqa: S608
                (owner,),
            )
        return [Member(*row) for row in rows]

    def update(self, member_id: str, changes: dict[str, str | None]) -> Member | None:
        """Apply `changes` (keys from EDITABLE); None when the member is gone."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        # Column names come from EDITABLE only, never from the request.
        columns = [name for name in EDITABLE if name in changes]
        assignments = ", ".join(f"{name} = ?" for name in [*columns, "updated_at"])
        values = [changes[name] for name in columns]
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE members SET {assignments} WHERE id = ?",  # noqa: S608
                (*values, self._stamp(), member_id),
            )
            if cursor.rowcount == 0:
                return None
            row = db.execute(
                f"SELECT {_COLUMNS} FROM members WHERE id = ?",  # noqa: S608
                (member_id,),
            ).fetchone()
        return Member(*row)

    def delete(self, member_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM members WHERE id = ?", (member_id,)).rowcount > 0

    def delete_user(self, event_id: str, event_type: str, user: str) -> int | None:
        """Delete every member `user` owns and record `event_id`, in one transaction.

        The number deleted, or None when the event had been processed already (a
        redelivery: nothing changes)."""
        with self._write() as db:
            seen = db.execute(
                "SELECT 1 FROM processed_events WHERE event_id = ?", (event_id,)
            ).fetchone()
            if seen:
                return None
            deleted = db.execute("DELETE FROM members WHERE owner = ?", (user,)).rowcount
            db.execute(
                "INSERT INTO processed_events (event_id, type, subject, processed_at)"
                " VALUES (?, ?, ?, ?)",
                (event_id, event_type, user, self._stamp()),
            )
        return int(deleted)

    def processed(self, event_id: str) -> bool:
        row = (
            self._connection()
            .execute("SELECT 1 FROM processed_events WHERE event_id = ?", (event_id,))
            .fetchone()
        )
        return row is not None
