"""Post-login return URLs (`rd`): only paths on the issuer, or URLs on allowed origins.

Refused: scheme-relative `//host`, `/\\host` (browsers read `\\` as `/`), userinfo tricks
(`https://good@evil`), any scheme but http/https (`javascript:`, `data:`, …), control
characters and whitespace (browsers strip tabs and newlines before parsing, which
turns `java\\tscript:` into `javascript:`), and origins not on the list.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: A return URL may be this long; one over 2 048 characters travels between the pages as a
#: token for its copy in Redis (issuer/login.py, `carried`).
MAX_LENGTH = 16_384


def safe_return_url(rd: str | None, allowed_origins: tuple[str, ...], default: str = "/") -> str:
    """`rd` when it is safe to redirect to, else `default`."""
    if not rd or len(rd) > MAX_LENGTH:
        return default
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in rd):
        return default
    if rd.startswith("/"):
        return rd if not rd.startswith("//") else default
    try:
        parts = urlsplit(rd)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return default
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return default
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port is not None else "")
    return rd if origin.lower() in allowed_origins else default
