"""Service and route paths as Kong 3.9.1's schema accepts them (kong/db/schema/typedefs.lua).

- A service path (typedefs.lua:318-329, 71-93) starts with `/`, has no empty segment, holds
  only RFC 3986's unreserved and reserved characters, and every `%` starts a triplet.
- A route path (typedefs.lua:604-620, 500-527) starts with `/` (a prefix) or `~/` (a regex)
  and has no empty segment; a `%` must start a triplet. Any other character may appear (the
  RFC 3986 check's verdict is only kept for `%`, typedefs.lua:504-506). A prefix must already
  be in the form Kong's router compares requests in (`kong.tools.uri.normalize`), or no
  request could ever match it as written; a regex must compile in Kong's dialect
  (`gateway.rustregex`).
"""

from __future__ import annotations

import re

from gateway import rustregex, uri

_RFC3986 = re.compile(r"^/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*\Z")
_TRIPLET = re.compile(r"%[0-9A-Fa-f]{2}")
_LOOSE = re.compile(r"%.?.?", re.DOTALL)


def _percent(value: str) -> str | None:
    rest = _TRIPLET.sub("___", value)
    found = _LOOSE.search(rest)
    return None if found is None else f"invalid url-encoded value: '{found[0]}'"


def service_path(value: str) -> str | None:
    """The problem with a service's `path`, or None."""
    if not value.startswith("/"):
        return "should start with: /"
    if "//" in value:
        return "must not have empty segments"
    if not _RFC3986.match(value):
        outside = "characters outside of the reserved list of RFC 3986 found"
        return f"invalid path: '{value}' ({outside})"
    return _percent(value)


def route_path(value: str) -> str | None:
    """The problem with one of a route's `paths`, or None."""
    if not value.startswith(("/", "~/")):
        return "should start with: / (fixed path) or ~/ (regex path)"
    if "//" in value:
        return "must not have empty segments"
    problem = _percent(value)
    if problem is not None:
        return problem
    if value.startswith("~"):
        try:
            rustregex.translate(value)
        except rustregex.RegexError as exc:
            return f"invalid regex: '{value[1:]}' ({exc})"
        return None
    try:
        normalized = uri.normalize(value.encode("utf-8", "surrogateescape"))
    except uri.BadPath:  # an encoded NUL: Kong decodes it, so the path is not normalized
        return "non-normalized path (it encodes a NUL byte)"
    if normalized != value:
        return f"non-normalized path, consider use '{normalized}' instead"
    return None
