"""The member service's one page for browsers: static files, served at `/` (the gateway
maps the public `/members/` there). It holds no data; its script calls the API.

The page is only ever reached through nginx's `protect.conf`, so a browser without a
session is sent to sign in before it gets here.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

STATIC = Path(__file__).resolve().parent / "static"
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
#: Everything the page loads is its own; its script talks to its own origin only.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Signed-in content: a shared cache must not keep it, and after sign-out Back must
    # not show it from the browser's cache.
    "Cache-Control": "no-store",
}


async def static(request: Request) -> Response:
    name, media_type = FILES[request.url.path]
    return FileResponse(STATIC / name, media_type=media_type, headers=HEADERS)
