"""Request bodies under `client_max_body_size` (issue 12, finding 4).

nginx's rule, which Kong inherits: a declared Content-Length over the limit is answered
413 before any of the body is read; a chunked body is cut off with 413 the moment it
passes the limit, and the upstream never receives a complete request. `0` means no
limit, as in nginx. Bodies are counted as they stream; only a route whose plugins read
the body holds it, and then never more than the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

# Kong's proxy default is 0 (unlimited, kong/templates/kong_defaults.lua:90), which lets
# one client fill the memory of a gateway that buffers for plugins; its Admin API's 10m
# (kong_defaults.lua:114) is the default here.
DEFAULT_CLIENT_MAX_BODY_SIZE = "10m"
_SIZE = re.compile(r"(\d+)([kmg]?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """nginx's size syntax: bytes, or a number with k, m or g (`10m`); 0 is unlimited."""
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"not a size (bytes, or a number with k, m or g): {text!r}")
    return int(found[1]) * _UNITS[found[2].lower()]


class TooLarge(Exception):
    """The body is over `client_max_body_size`."""

    status = 413


class Body:
    """A request's body as it arrives from ASGI `receive`, counted against the limit."""

    def __init__(self, receive: Any, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.exceeded = False  # set before TooLarge is raised (it may surface wrapped)

    def check_declared(self, content_length: str | None) -> None:
        declared = int(content_length) if content_length and content_length.isdigit() else 0
        if self.limit and declared > self.limit:
            self.exceeded = True
            raise TooLarge

    async def chunks(self) -> AsyncIterator[bytes]:
        total = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if self.limit and total > self.limit:
                self.exceeded = True
                raise TooLarge
            if chunk:
                yield chunk
            if not message.get("more_body"):
                return

    async def read(self) -> bytes:
        """The whole body, for plugins; at most `limit` bytes are ever held."""
        data = bytearray()
        async for chunk in self.chunks():
            data += chunk
        return bytes(data)


def too_large(limit: int) -> tuple[int, list[tuple[str, str]], bytes]:
    """RFC 9457 problem+json; the connection is closed, as nginx does after a 413."""
    problem = {
        "type": "tag:authgate,2026:gateway/body-too-large",
        "title": "body too large",
        "status": 413,
        "detail": f"The request body is larger than client_max_body_size ({limit} bytes).",
    }
    headers = [("content-type", "application/problem+json"), ("connection", "close")]
    return 413, headers, json.dumps(problem).encode()
