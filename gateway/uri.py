"""Request paths as Kong 3.9 judges and forwards them: decoded once, re-escaped once.

Issue 12: `serve` decoded the path twice (uvicorn's `scope["path"]`, then again for
routing) and forwarded the decoded text unescaped, so `%252e%252e` became `..`, `%20` a
literal space and `%253F` a `?` that cut the path. Kong instead works on the raw request
target (`var.request_uri`, kong/router/traditional.lua:1757, kong/router/atc.lua:446):

- `normalize` (kong/tools/uri.lua:78-167, called by kong/router/utils.lua:63): every
  `%XX` triplet is decoded exactly once, except reserved characters (`/?#%` and RFC 3986's
  delimiters, uri.lua:28), which stay encoded with upper-case hex (uri.lua:48-59); then
  dot segments are removed (`%2e` counts as `.`, uri.lua:93) and `//` merged.
- `escape` (uri.lua:41,69-75, applied to the upstream path at
  kong/runloop/handler.lua:1324): every byte that may not appear literally in a path is
  percent-encoded; `%` is left alone, so a reserved triplet kept by `normalize` travels
  on as it arrived and the upstream decodes it once.

Kong runs inside nginx, which refuses a malformed triplet or an encoded NUL with 400
before Kong sees the request (`ngx_http_parse_complex_uri`, states `sw_quoted` and
`sw_quoted_second`); `normalize` raises `BadPath` for those.

Paths are bytes on the wire; here they are `str` decoded as UTF-8 with `surrogateescape`,
so route paths written in UTF-8 compare naturally and any other byte survives the round
trip unchanged.
"""

from __future__ import annotations

# RFC 3986 §2.2 gen-delims and sub-delims, plus `%` (kong/tools/uri.lua:28).
RESERVED = frozenset(b"!*'();:@&=+$,/?%#[]")
# Bytes a path may carry literally (kong/tools/uri.lua:41): unreserved, reserved but `%`'s
# own meaning, and `%` itself (it only ever starts a triplet kept by `normalize`).
_LITERAL = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!#$&'()*+,/:;=?@[]%"
)
_HEX = frozenset(b"0123456789abcdefABCDEF")


class BadPath(ValueError):
    """A request target nginx would refuse with 400 (malformed `%`, encoded NUL)."""

    status = 400


def normalize(raw: bytes) -> str:
    """The path Kong routes by, from the raw request path (no query)."""
    decoded = _decode_once(raw)
    if not decoded.startswith(b"/"):
        decoded = b"/" + decoded
    if b"." in decoded or b"//" in decoded:
        decoded = _resolve(decoded)
    return decoded.decode("utf-8", "surrogateescape")


def escape(path: str) -> str:
    """The path as it goes upstream: normalized text made safe for a request line."""
    data = path.encode("utf-8", "surrogateescape")
    if all(b in _LITERAL for b in data):
        return data.decode("ascii")
    return "".join(chr(b) if b in _LITERAL else f"%{b:02X}" for b in data)


def _decode_once(raw: bytes) -> bytes:
    if b"%" not in raw:
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        byte = raw[i]
        if byte != 0x25:  # "%"
            out.append(byte)
            i += 1
            continue
        pair = raw[i + 1 : i + 3]
        if len(pair) < 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            raise BadPath("malformed percent-encoding in the request path")
        value = int(pair, 16)
        if value == 0:
            raise BadPath("encoded NUL in the request path")
        if value in RESERVED:
            out += b"%" + pair.upper()
        else:
            out.append(value)
        i += 3
    return bytes(out)


def _resolve(path: bytes) -> bytes:
    """RFC 3986 §5.2.4 dot-segment removal with `//` merged, as kong/tools/uri.lua:104-166.

    A path whose last segment is empty, `.` or `..` keeps its trailing slash (`/a/b/..` is
    `/a/`), and `..` never climbs above the root.
    """
    segments = path.split(b"/")[1:]
    kept: list[bytes] = []
    trailing = False
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in (b".", b".."):
            if segment == b".." and kept:
                kept.pop()
            trailing = last
        elif segment == b"":
            trailing = last
        else:
            kept.append(segment)
            trailing = False
    if not kept:
        return b"/"
    return b"/" + b"/".join(kept) + (b"/" if trailing else b"")
