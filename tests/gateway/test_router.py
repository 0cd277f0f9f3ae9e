"""Kong's routing rules for the supported subset, and `serve` proxying by them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import declarative
from gateway.router import Router

from ..gateway_harness import CountingUpstream, GatewayProcess

ROUTES = """
_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:1/s
    routes:
      - {name: prefix-short, paths: ["/api"]}
      - {name: prefix-long, paths: ["/api/v2"]}
      - {name: regex-low, paths: ["~/api/v\\\\d+/items$"], regex_priority: 1}
      - {name: regex-high, paths: ["~/api/v2/items$"], regex_priority: 5}
      - {name: with-host, paths: ["/api"], hosts: ["admin.example.com"]}
      - {name: wildcard, hosts: ["*.example.org"]}
      - {name: suffix-wild, hosts: ["shop.*"]}
      - {name: writes, paths: ["/api"], methods: [POST]}
      - {name: keep, paths: ["/keep"], strip_path: false}
  - name: root
    url: http://127.0.0.1:1
    routes:
      - {name: bare, paths: ["/bare"]}
      - {name: versioned, paths: ["~/v\\\\d+/"]}
"""


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(declarative.parse(ROUTES))


@pytest.mark.parametrize(
    ("method", "host", "path", "route", "upstream"),
    [
        ("GET", "x.test", "/api/v2/items", "regex-high", "/s"),  # regexes before prefixes
        ("GET", "x.test", "/api/v7/items", "regex-low", "/s"),
        ("GET", "x.test", "/api/v2/other", "prefix-long", "/s/other"),  # longest prefix
        ("GET", "x.test", "/api/x", "prefix-short", "/s/x"),
        (
            "GET",
            "x.test",
            "/apis",
            "prefix-short",
            "/s/s",
        ),  # Kong's prefixes are plain string prefixes
        ("GET", "admin.example.com:8443", "/api/x", "with-host", "/s/x"),  # more fields first
        ("POST", "x.test", "/api/x", "writes", "/s/x"),
        ("GET", "a.b.example.org", "/anything", "wildcard", "/s/anything"),
        ("GET", "shop.test", "/q", "suffix-wild", "/s/q"),
        ("GET", "x.test", "/keep/a", "keep", "/s/keep/a"),
        ("GET", "x.test", "/bare/a/b", "bare", "/a/b"),
        ("GET", "x.test", "/bare", "bare", "/"),
        ("GET", "x.test", "/v3/users", "versioned", "/users"),  # regex strip: the whole match
        ("GET", "x.test", "/public/../api/v2/z", "prefix-long", "/s/z"),  # judged normalized
        # Kong keeps reserved characters encoded when it normalises (kong/tools/uri.lua:
        # 28, 48-59 at 3.9.1): "/api%2Fv2/z" is not under "/api/v2".
        ("GET", "x.test", "/api%2Fv2/z", "prefix-short", "/s/%2Fv2/z"),
    ],
)
def test_route_order_and_paths(
    router: Router, method: str, host: str, path: str, route: str, upstream: str
) -> None:
    match = router.match(method, host, path)
    assert match is not None and (match.route.name, match.upstream_path) == (route, upstream)


def test_no_match(router: Router) -> None:
    assert router.match("GET", "x.test", "/nothing") is None


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingUpstream]:
    upstream = CountingUpstream()
    yield upstream
    upstream.close()


def serve(tmp: Path, doc: dict[str, Any]) -> GatewayProcess:
    return GatewayProcess(doc, tmp)


def test_serve_proxies_by_the_rules(counting: CountingUpstream, tmp_path: Path) -> None:
    doc = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "api",
                "url": counting.url + "/base",
                "routes": [
                    {"name": "plain", "paths": ["/p"]},
                    {"name": "kept", "paths": ["/h"], "preserve_host": True},
                ],
            }
        ],
    }
    gw = serve(tmp_path, doc)
    try:
        with gw.client() as client:
            missing = client.get("/nowhere")
            assert missing.status_code == 404
            assert missing.json() == {"message": "no Route matched with those values"}
            big = os.urandom(3 * 1024 * 1024)  # streamed: no plugin on this route
            answer = client.post(
                "/p/upload?x=1&y=2", content=big, headers={"X-Forwarded-For": "198.51.100.1"}
            )
            assert answer.status_code == 201
            seen = counting.seen[-1]
            assert seen["path"] == "/base/upload?x=1&y=2"
            assert seen["sha256"] == hashlib.sha256(big).hexdigest()
            assert seen["headers"]["content-length"] == str(len(big))
            assert seen["headers"]["host"] == f"127.0.0.1:{counting.port}"
            assert seen["headers"]["x-forwarded-for"] == "198.51.100.1, 127.0.0.1"
            assert answer.headers["location"].startswith("/items/")
            client.get("/h/x", headers={"Host": "app.example.com"})
            assert counting.seen[-1]["headers"]["host"] == "app.example.com"
    finally:
        gw.stop()


def test_upstream_down_is_502(tmp_path: Path) -> None:
    from stack.processes import free_port

    doc = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "gone",
                "url": f"http://127.0.0.1:{free_port()}",
                "retries": 1,
                "routes": [{"name": "r", "paths": ["/"]}],
            }
        ],
    }
    gw = serve(tmp_path, doc)
    try:
        with gw.client() as client:
            answer = client.get("/x")
        assert answer.status_code == 502
        assert answer.json() == {
            "message": "An invalid response was received from the upstream server"
        }
    finally:
        gw.stop()
