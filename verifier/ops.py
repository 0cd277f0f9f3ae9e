"""The verifier's operations endpoints (`/healthz`, `/readyz`, `/metrics`) and its
lifespan: everything but `/verify`, kept off the hot path's module."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from authgate.jwks import KeySet
from authgate.tokens import TokenVerifier

from .asgi import Receive, Send
from .metrics import Metrics
from .sessions import SessionStore

Handler = Callable[[Send], Awaitable[None]]


class Operations:
    def __init__(
        self, keys: KeySet, tokens: TokenVerifier, sessions: SessionStore, metrics: Metrics
    ) -> None:
        self._keys = keys
        self._tokens = tokens
        self._sessions = sessions
        self._metrics = metrics
        self._routes: dict[str, Handler] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._render_metrics,
        }

    def route(self, path: str) -> Handler:
        return self._routes.get(path, _not_found)

    async def _healthz(self, send: Send) -> None:
        await respond(send, 200, b"ok\n", b"text/plain")

    async def _readyz(self, send: Send) -> None:
        checks = {
            "redis": await self._sessions.ping(),
            "keys": self._keys.ready,
            "session_events": self._sessions.subscribed,
        }
        ready = checks["redis"] and checks["keys"]
        body = json.dumps({"ready": ready, "checks": checks}).encode() + b"\n"
        await respond(send, 200 if ready else 503, body, b"application/json")

    async def _render_metrics(self, send: Send) -> None:
        sessions, keys, tokens = self._sessions, self._keys, self._tokens
        text = self._metrics.render(
            {
                "authgate_verifier_token_cache_entries": (
                    "Verified tokens cached.", self._tokens.cache_len),
                "authgate_verifier_session_cache_entries": (
                    "Session records cached.", sessions.cache_len),
                "authgate_verifier_token_cache_bytes": (
                    "Memory of the cached tokens, estimated.", lambda: tokens.cache.bytes),
                "authgate_verifier_session_cache_bytes": (
                    "Memory of the cached session records, estimated.",
                    lambda: sessions.cache.bytes),
                "authgate_verifier_token_cache_evictions": (
                    "Tokens pushed out of the cache by its bounds.",
                    lambda: tokens.cache.evictions),
                "authgate_verifier_session_cache_evictions": (
                    "Session records pushed out of the cache by its bounds.",
                    lambda: sessions.cache.evictions),
                "authgate_verifier_session_events_subscribed": (
                    "1 while subscribed to session events.", lambda: int(sessions.subscribed)),
                "authgate_verifier_jwks_keys_ready": (
                    "1 while signing keys are held.", lambda: int(keys.ready)),
                "authgate_verifier_jwks_fetches": (
                    "JWKS fetches since start.", lambda: keys.fetches),
            }
        )  # fmt: skip
        await respond(send, 200, text.encode(), b"text/plain; version=0.0.4")

    async def startup(self) -> None:
        await self._keys.start()
        await self._sessions.start()

    async def shutdown(self) -> None:
        await self._sessions.close()
        await self._keys.close()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """ASGI lifespan (under uvicorn): `startup` and `shutdown`."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # report any start failure to the server
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _not_found(send: Send) -> None:
    await respond(send, 404, b"not found\n", b"text/plain")
