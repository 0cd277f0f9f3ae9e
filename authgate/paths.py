"""Request paths and hosts as nginx hands them on: what routing and policy must judge.

Shared by the verifier's policy rules and the gateway's router, so both read a request
the same way (`/public/..%2Fadmin` is `/admin` to both).
"""

from __future__ import annotations

from posixpath import normpath
from urllib.parse import unquote


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
