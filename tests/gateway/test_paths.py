"""Issue 12, finding 2: `serve` decodes the request path exactly once and forwards it
correctly encoded, as Kong 3.9 does.

Kong routes by `normalize(var.request_uri)` (kong/router/traditional.lua:1757,1777;
kong/router/utils.lua:57-63): percent-triplets decoded once except reserved characters,
which stay encoded (kong/tools/uri.lua:28,48-59,84-89), dot segments removed, `%2e` being
a dot (uri.lua:93), `//` merged (uri.lua:139). The upstream path is `escape`d once
(kong/runloop/handler.lua:1324, kong/tools/uri.lua:41,69-75), `%` left alone. nginx,
which Kong runs in, answers 400 to a malformed triplet or `%00`
(ngx_http_parse_complex_uri, states sw_quoted / sw_quoted_second).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.router import sanitize_postfix, upstream_uri_v0

from ..gateway_harness import GatewayProcess
from .wire import RawUpstream, corpus, send

ROUTES = {"login": "/login", "api": "/api", "other": "/"}
STRIP = {"login": False, "api": True, "other": False}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, RawUpstream]]:
    ends = {name: RawUpstream() for name in ROUTES}
    yield ends
    for end in ends.values():
        end.close()


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, RawUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    doc: dict[str, Any] = {
        "_format_version": "3.0",
        "services": [
            {
                "name": name,
                "url": upstreams[name].url,
                "routes": [{"name": name, "paths": [path], "strip_path": STRIP[name]}],
            }
            for name, path in ROUTES.items()
        ],
    }
    process = GatewayProcess(doc, tmp_path_factory.mktemp("gw-paths"))
    yield process
    process.stop()


def _through(
    gateway: GatewayProcess, upstreams: dict[str, RawUpstream], raw: str
) -> tuple[int, dict[str, list[str]]]:
    for end in upstreams.values():
        end.clear()
    status, _, _ = send(gateway.port, "GET", raw)
    return status, {name: end.targets() for name, end in upstreams.items()}


@pytest.mark.parametrize("case", corpus("paths"), ids=lambda c: c["raw"])
def test_corpus_path(
    gateway: GatewayProcess, upstreams: dict[str, RawUpstream], case: dict[str, Any]
) -> None:
    status, received = _through(gateway, upstreams, case["raw"])
    if "status" in case:
        assert status == case["status"], case["why"]
        assert not any(received.values()), "a refused path reached an upstream"
        return
    assert status == 200, case["why"]
    expected = {name: [] for name in ROUTES} | {case["route"]: [case["upstream"]]}
    assert received == expected, case["why"]


# The oracle below decodes independently of gateway/uri.py: a path is its list of
# segments (split on literal `/` only), each percent-decoded once; `.`/`..` (after
# decoding, as kong/tools/uri.lua:93) removed, empty segments merged.
def decoded_segments(path: str) -> tuple[tuple[bytes, ...], bool]:
    segments = path.split("/")[1:]
    kept: list[bytes] = []
    trailing = False
    for index, segment in enumerate(segments):
        value = unquote_to_bytes(segment)
        last = index == len(segments) - 1
        if value in (b".", b".."):
            if value == b".." and kept:
                kept.pop()
            trailing = last
        elif value == b"":
            trailing = last
        else:
            kept.append(value)
            trailing = False
    return tuple(kept), trailing and bool(kept)


def canonical(segments: tuple[bytes, ...], trailing: bool) -> str:
    """One spelling of a decoded path: every byte but unreserved ones encoded."""
    if not segments:
        return "/"
    return "/" + "/".join(quote(s, safe="") for s in segments) + ("/" if trailing else "")


def route_for(path: str) -> str:
    # Route prefixes here are unreserved characters and `/`, so matching them against the
    # canonical spelling equals matching Kong's normalized form (longest prefix first).
    return max((n for n, p in ROUTES.items() if path.startswith(p)), key=lambda n: len(ROUTES[n]))


SAFE = "abcxyzABC019-_.~!$&'()*+,;=:@"
piece = st.one_of(
    st.text(SAFE, min_size=1, max_size=4),
    st.sampled_from([".", "..", "%2e", "%2E%2e", ".%2e", "", "login", "api", "items"]),
    st.integers(0x01, 0xFF).map(lambda b: f"%{b:02X}"),
    st.integers(0x01, 0xFF).map(lambda b: f"%{b:02x}"),
    st.sampled_from(["%20", "%3F", "%23", "%2F", "%2f", "%25", "%3f%23"]),
    st.sampled_from(["%252e", "%252E%252e", "%253F", "%2523", "%252F", "%2520", "%2500"]),
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF), min_size=1, max_size=2).map(
        lambda t: quote(t, safe="")
    ),
)
segment = st.lists(piece, max_size=3).map("".join)
raw_path = st.tuples(
    st.sampled_from(["", "/login", "/api", "/%61pi", "/api%2F", "/login/%2e%2e", "/apis"]),
    st.lists(segment, max_size=5),
).map(lambda t: t[0] + "".join("/" + s for s in t[1]) if t[0] or t[1] else "/")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=raw_path)
def test_upstream_decodes_once_to_what_was_routed(
    gateway: GatewayProcess, upstreams: dict[str, RawUpstream], raw: str
) -> None:
    status, received = _through(gateway, upstreams, raw)
    assert status == 200
    segments, trailing = decoded_segments(raw)
    routed = canonical(segments, trailing)
    route = route_for(routed)
    rest = sanitize_postfix(routed[len(ROUTES[route]) :])
    want = decoded_segments(upstream_uri_v0(STRIP[route], rest, routed, "/"))
    assert [n for n, targets in received.items() if targets] == [route]
    (target,) = received[route]
    # Correctly encoded: only characters a path may carry literally (RFC 3986 §3.3).
    assert all(c in SAFE or c.isalnum() or c in "/%" for c in target), target
    assert "?" not in target and "#" not in target and " " not in target
    assert decoded_segments(target) == want
