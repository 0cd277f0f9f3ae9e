"""A cap on request bodies, as plain ASGI: a declared Content-Length over the limit is
answered 413 before a byte of the body is read, and a chunked body that grows past it
stops being read there (RFC 9110 §15.5.14). The issuer takes only short forms and small
JSON documents; nothing it does needs a large body, and reading one costs memory."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PayloadTooLarge

#: Bytes. Our largest body is a form of a few short fields or a roles list.
MAX_BODY = 64 * 1024


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        render: Callable[[Request, PayloadTooLarge], Response],
        limit: int = MAX_BODY,
    ) -> None:
        self.app = app
        self.render = render
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                too_large = PayloadTooLarge(f"the body is over {self.limit} bytes")
                await self.render(Request(scope), too_large)(scope, receive, send)
                return
        seen = 0
        limit = self.limit

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised inside the handler's read: the app's error handler answers it.
                    raise PayloadTooLarge(f"the body is over {limit} bytes")
            return message

        await self.app(scope, counted, send)
