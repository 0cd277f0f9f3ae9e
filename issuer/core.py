"""The issuer's state without HTTP, built once from its settings: Redis, signing keys,
the outbox, users, sessions and tokens, and the account actions that combine them.

Everything that acts as the issuer starts here: the web app (`issuer.service.Issuer`, which
adds providers, rate limits and the event loops), the command line, `bin/demo` and the
issuer benchmark. So each part is wired in exactly one place.
"""

from __future__ import annotations

from authgate import redis_client
from authgate.contract import DEFAULT_ALGORITHMS, DEFAULT_LEEWAY
from authgate.tokens import TokenVerifier

from .clients import Clients
from .device_flow import DeviceFlow
from .keys import KeyStore
from .outbox import Outbox
from .sessions import Sessions
from .settings import Settings
from .tokens import Tokens, TokenSettings
from .users import SUSPENDED, User, Users


class Core:
    def __init__(self, settings: Settings, *, signs: bool = True) -> None:
        """`signs`: whether this process signs tokens (it then makes a first key when the
        keys directory has none); a command that only manages data passes False."""
        self.settings = settings
        self.redis = redis_client.connect(settings.redis_url)
        self.keys = KeyStore(settings.keys_dir)
        if signs:
            self.keys.ensure(settings.signing_algorithm)
        self.outbox = Outbox(settings.public_url)
        self.users = Users(self.redis, self.outbox)
        self.sessions = Sessions(
            self.redis, settings.session_ttl, self.outbox,
            replicas=settings.revocation_replicas, wait_ms=settings.revocation_wait_ms,
        )  # fmt: skip
        self.clients = Clients(self.redis, self.outbox, self.sessions)
        self.device_flow = DeviceFlow(self.redis)
        self.tokens = Tokens(
            self.redis, self.keys, self.sessions, self.users,
            TokenSettings(
                issuer=settings.public_url, audience=settings.audience,
                access_ttl=settings.access_token_ttl, refresh_idle_ttl=settings.refresh_idle_ttl,
                refresh_grace=settings.refresh_grace,
            ),
        )  # fmt: skip
        # The issuer checks tokens exactly as a verifier does (one verification path).
        self.token_verifier = TokenVerifier(
            self.keys, issuer=settings.public_url, audience=settings.audience,
            algorithms=frozenset(DEFAULT_ALGORITHMS), leeway=DEFAULT_LEEWAY, cache_size=0,
        )  # fmt: skip

    async def delete_user(self, user: User, actor: str) -> None:
        """Sessions first (verifiers refuse at once), then the user."""
        await self.sessions.end_all(user.id, "user_deleted")
        await self.users.delete(user, actor)

    async def set_status(self, user: User, status: str, actor: str) -> int:
        """Suspend (every session ends at once) or reactivate; the sessions ended."""
        await self.users.set_status(user.id, status, actor)
        return await self.sessions.end_all(user.id, "user_suspended") if status == SUSPENDED else 0

    async def close(self) -> None:
        await self.redis.aclose()
