"""The member service as a real process (`python -m examples.members`), on a free port,
with its own SQLite file and its own exchange and queues on the session's RabbitMQ."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from stack.processes import Child, free_port, wait_for_port

from ..amqp import delete
from ..polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Names:
    exchange: str
    queue: str

    @classmethod
    def unique(cls) -> Names:
        run = secrets.token_hex(4)
        return cls(f"authgate.events.t{run}", f"members.user-deleted.t{run}")

    @property
    def dlq(self) -> str:
        return self.queue + ".dlq"

    def clean_up(self, amqp_url: str) -> None:
        delete(amqp_url, [self.queue, self.dlq], [self.exchange, self.queue + ".dlx"])


def identity(user: str, roles: str = "viewer") -> dict[str, str]:
    """The headers nginx sets from the verifier's answer."""
    return {
        "X-Auth-User": user, "X-Auth-Email": f"{user}@example.com", "X-Auth-Name": user.title(),
        "X-Auth-Roles": roles, "X-Auth-Scopes": "api:read api:write",
        "X-Auth-Session": secrets.token_hex(8),
    }  # fmt: skip


class MembersProcess:
    def __init__(self, db: Path, amqp_url: str, names: Names, log: Path) -> None:
        self.db, self.amqp_url, self.names, self.log = db, amqp_url, names, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ, "MEMBERS_HOST": "127.0.0.1", "MEMBERS_PORT": str(self.port),
            "MEMBERS_DB": str(db), "MEMBERS_AMQP_URL": amqp_url,
            "MEMBERS_EXCHANGE": names.exchange, "MEMBERS_QUEUE": names.queue,
        }  # fmt: skip
        self.child = Child([sys.executable, "-m", "examples.members"], log=log, env=env, cwd=ROOT)
        try:
            wait_for_port(self.port, self.child.start().process, timeout=20)
        except (RuntimeError, TimeoutError) as exc:
            self.child.stop()
            raise AssertionError(f"{exc}\n{self.child.log_tail()}") from exc

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/healthz", timeout=5).json()
        return body

    def consumer(self) -> dict[str, Any]:
        state: dict[str, Any] = self.health()["consumer"]
        return state

    def wait_consuming(self, timeout: float = 30) -> None:
        wait_until(
            lambda: self.consumer()["state"] == "consuming",
            timeout,
            lambda: f"consumer not consuming: {self.consumer()}\n{self.child.log_tail()}",
        )

    def stop(self) -> None:
        self.child.stop()
