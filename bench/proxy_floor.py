"""The Python proxy floor (issue 17): the least a pass-through proxy on `serve`'s stack does.

uvicorn (httptools, uvloop) in front, one pooled aiohttp session behind, as
`authgate-gateway serve` has; no routing, no body limit, no plugins. Every request goes to
`$AUTHGATE_BENCH_UPSTREAM` with its path and query, its headers minus the hop-by-hop ones
(RFC 9110 §7.6.1), and the answer streams back. What `serve` costs above this is what its
routing and Kong behaviour cost.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

UPSTREAM = os.environ.get("AUTHGATE_BENCH_UPSTREAM", "http://127.0.0.1:8000")
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
}
_session: aiohttp.ClientSession | None = None


def session() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            trust_env=False,
        )
    return _session


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in scope["headers"]
        if k.lower() not in HOP_BY_HOP and k.lower() != b"host"
    ]

    async def body() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if chunk := message.get("body", b""):
                yield chunk
            if not message.get("more_body"):
                return

    names = {k.lower() for k, _ in scope["headers"]}
    has_body = b"content-length" in names or b"transfer-encoding" in names
    url = URL(UPSTREAM + target.decode("latin-1"), encoded=True)
    async with session().request(
        scope["method"],
        url,
        headers=headers,
        data=body() if has_body else b"",
        allow_redirects=False,
        auto_decompress=False,
    ) as response:
        out = [(k, v) for k, v in response.raw_headers if k.lower() not in HOP_BY_HOP]
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
