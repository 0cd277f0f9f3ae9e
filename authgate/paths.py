"""Request paths and hosts as nginx hands them on: what routing and policy must judge.

Shared by the verifier's policy rules and the gateway's router, so both read a request
the same way (`/public/..%2Fadmin` is `/admin` to both).
"""

from __future__ import annotations

import re
from posixpath import normpath
from urllib.parse import unquote, unquote_to_bytes


def normalize_path(uri: str) -> str:
    """The path of a request URI as nginx's `$uri` would have it.

    `X-Original-URI` carries `$request_uri`, which is raw; upstreams see the decoded and
    resolved path, so the policy must too.
    """
    if uri.startswith(("http://", "https://")):  # absolute-form request target
        uri = "/" + uri.split("/", 3)[3] if uri.count("/") >= 3 else "/"
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if "%" in path:
        path = unquote(path, errors="replace")
    if not path.startswith("/"):
        path = "/" + path
    if "//" in path or "/." in path:
        trailing = path.endswith("/") and path != "/"
        path = normpath(path)
        if path.startswith("//"):  # POSIX keeps a leading double slash; HTTP does not
            path = "/" + path.lstrip("/")
        if trailing and path != "/":
            path += "/"
    return path


def normalize_host(host: str) -> str:
    """Lower-case host without its port (`[::1]:8080` → `[::1]`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


# What makes a request path mean different things to different readers, so that no rule
# judged on it can be sure to hold for the upstream (issue 12): a path with any of these
# is refused, by nginx with 400 (`nginx/authgate/http.conf`, the same list) and by the
# verifier with 403.
_UNSAFE = re.compile(
    r"""\\ | \# | ; | // | %(?![0-9a-f]{2}) # backslash, fragment, parameter, empty segment,
                                           # bad escape
    | %(2f|5c|00|[01][0-9a-f]|7f)          # encoded separator, NUL or control character
    | %25[0-9a-f]{2}                       # double encoding (%252e is %2e decoded once)
    | /(\.|%2e){1,2}(/|$)                  # a dot segment, plain or encoded
    """,
    re.IGNORECASE | re.VERBOSE,
)


def unsafe_path(uri: str) -> str | None:
    """Why the path of request target `uri` can't be judged safely, or None.

    Refused: dot segments (`..`, `%2e%2e`), empty segments (`//`), encoded separators and
    control characters (`%2f`, `%5c`, `%00`…), backslashes, `;` (path parameters, which
    some upstreams strip: `/admin;x/` is `/admin/` to them), a fragment, double encodings
    (`%252e`), malformed escapes, and bytes that are not UTF-8 once decoded (overlong
    forms such as `%c0%ae` among them). What is left means the same to every reader that
    decodes once: the path nginx routes by, the verifier judges and the upstream gets.
    """
    if uri.startswith(("http://", "https://")):  # absolute-form request target
        uri = "/" + uri.split("/", 3)[3] if uri.count("/") >= 3 else "/"
    path = uri.split("?", 1)[0]
    match = _UNSAFE.search(path)
    if match is not None:
        return f"unsafe path: {match.group(0)!r}"
    if "%" in path or not path.isascii():
        try:  # raw bytes arrive latin-1 decoded; anything else is text already
            raw = path.encode("latin-1")
        except UnicodeEncodeError:
            raw = path.encode("utf-8")
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return "unsafe path: not UTF-8 once decoded"
    return None
