"""The Python floor: a raw ASGI app that answers 204 to everything, nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]

START: Message = {"type": "http.response.start", "status": 204, "headers": []}
BODY: Message = {"type": "http.response.body", "body": b""}


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "http":
        await send(START)
        await send(BODY)
