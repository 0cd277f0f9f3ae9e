"""Headers every issuer answer carries, prepared once at start, as plain ASGI.

The sign-in page holds a password form: framed by another site it can be overlaid and
clicked through (clickjacking), so no page may be framed — CSP `frame-ancestors 'none'`
(CSP Level 3 §6.4.2) and, for browsers that predate it, `X-Frame-Options: DENY` (RFC
7034). Login URLs carry `rd` and the provider's `state`; `Referrer-Policy: no-referrer`
keeps them out of the Referer of any link or redirect that leaves a page. The CSP allows
nothing but our own stylesheet and script and forms posting to us or, through the redirect
after sign-in, to a return origin (`form-action` also governs that redirect).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(form_targets: Iterable[str], *, images: Iterable[str] = ()) -> str:
    """The pages load their own stylesheet, script and images only ('self', served from
    /_authgate/static/; a configured logo's origin too); nothing inline runs."""
    return (
        (
            "default-src 'none'; style-src 'self'; script-src 'self'; "
            f"img-src 'self' {' '.join(images)}; "
            f"form-action 'self' {' '.join(form_targets)}; frame-ancestors 'none'; base-uri 'none'"
        )
        .replace("  ", " ")
        .replace(" ;", ";")
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, csp: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-content-type-options", b"nosniff"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)
