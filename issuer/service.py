"""The issuer as the HTTP handlers see it: the core (`issuer.core`) and the parts that
serve requests — providers, rate limits, device cookies, the event loops. Built once per
process by `issuer.app.create_app`; handlers reach it through `issuer.web.issuer`.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import httpx

from .client_auth import ClientAuthenticator
from .core import Core
from .devices import DeviceCookies, load_secret
from .inbound import LifecycleConsumer
from .providers import Providers
from .proxies import TrustedProxies
from .ratelimit import RateLimiter
from .relay import Relay
from .settings import Settings
from .templating import Pages
from .throttle import Throttle
from .users import SUSPENDED

log = logging.getLogger("authgate.issuer")


class Issuer(Core):
    """Everything a request handler needs: the core, and the parts that serve HTTP."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.limiter = RateLimiter(self.redis)
        self.client_auth = ClientAuthenticator(
            self.redis, self.clients, (f"{settings.public_url}/token", settings.public_url)
        )
        device_secret = load_secret(settings.keys_dir)
        self.throttle = Throttle(self.redis, secret=device_secret)
        self.devices = DeviceCookies(device_secret, secure=settings.secure_cookies)
        self.http = httpx.AsyncClient(timeout=10, follow_redirects=False)
        self.providers = Providers(settings.providers, self.http)
        public = urlsplit(settings.public_url)
        self.known_origins = frozenset(
            {f"{public.scheme}://{public.netloc}", *settings.return_origins}
        )
        self.trusted_proxies = TrustedProxies(settings.trusted_proxies)
        self.pages = Pages(settings)
        self.relay = None
        if settings.events_relay:
            self.relay = Relay(
                self.redis, settings.amqp_url, settings.events_exchange,
                claim_idle=settings.relay_claim_idle,
            )  # fmt: skip
        self.inbound = None
        if settings.inbound_queue not in ("", "off"):
            self.inbound = LifecycleConsumer(
                self.redis, settings.amqp_url, exchange=settings.inbound_exchange,
                routing_keys=settings.inbound_routing_keys, queue=settings.inbound_queue,
                delivery_limit=settings.inbound_delivery_limit,
                quorum_size=settings.amqp_quorum_size, act=self.lifecycle,
            )  # fmt: skip

    async def lifecycle(self, action: str, uid: str, event_id: str) -> bool:
        """An inbound lifecycle event's effect, as the admin action would have it."""
        user = await self.users.get(uid)
        if user is None:
            log.info("inbound: event %s names no user we know (%s)", event_id, uid)
            return False
        actor = f"event:{event_id}"
        if action == "deleted":
            await self.delete_user(user, actor)
        elif action == "suspended":
            await self.set_status(user, SUSPENDED, actor)
        else:
            log.info("inbound: event %s: nothing to do for %r", event_id, action)
            return False
        return True

    def background(self) -> list[asyncio.Task[None]]:
        """The relay and the lifecycle consumer, as configured."""
        tasks = []
        if self.relay is not None:
            tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        if self.inbound is not None:
            tasks.append(asyncio.create_task(self.inbound.run(), name="lifecycle-consumer"))
        return tasks

    async def close(self) -> None:
        await self.client_auth.close()
        await self.providers.aclose()
        await self.http.aclose()
        await super().close()
