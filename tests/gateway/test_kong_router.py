"""`serve` routes as Kong 3.9.1's `traditional_compatible` router does.

Kong's v0 path-handling table (kong_path_handling_cases.yml) runs through a real `serve`,
one service and host-scoped route per row, as spec/01-unit/08-router_spec.lua:4219-4300
runs it. The differences issue 15 lists are each a case below citing the Kong source line
that decides it (paths at tag 3.9.1), through `Router` and, for a sample, through `serve`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import declarative
from gateway.router import Router

from ..gateway_harness import CountingUpstream, GatewayProcess

ROWS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "kong_path_handling_cases.yml").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingUpstream]:
    upstream = CountingUpstream()
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def path_handling(
    counting: CountingUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    services = []
    for k, row in enumerate(ROWS):
        route: dict[str, Any] = {
            "name": f"row-{k}",
            "hosts": [f"localbin-{k}.test"],
            "strip_path": row["strip_path"],
        }
        if row["route_path"] is not None:
            route["paths"] = [row["route_path"]]
        services.append(
            {"name": f"row-{k}", "url": counting.url + row["service_path"], "routes": [route]}
        )
    gateway = GatewayProcess(
        {"_format_version": "3.0", "services": services}, tmp_path_factory.mktemp("v0")
    )
    yield gateway
    gateway.stop()


def test_v0_path_handling_table_through_serve(
    path_handling: GatewayProcess, counting: CountingUpstream
) -> None:
    wrong = []
    with path_handling.client() as client:
        for k, row in enumerate(ROWS):
            answer = client.get(row["request"], headers={"Host": f"localbin-{k}.test"})
            seen = counting.seen[-1]["path"] if answer.status_code == 201 else answer.status_code
            if seen != row["upstream"]:
                wrong.append(
                    (row["kong"], row["route_path"], row["request"], row["upstream"], seen)
                )
    assert not wrong, f"{len(wrong)} of {len(ROWS)} rows differ from Kong: {wrong}"


CONFIG = """
_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:1/s
    routes:
      # transform.lua:536 and 654-666: the plain-host bit (60) outranks the field count,
      # which Kong shifts as a 32-bit number (transform.lua:456-465) into bits 29-31.
      - {name: plain-host, hosts: [plain.test]}
      - {name: three-fields, methods: [GET], paths: [/x], hosts: ["*.test"]}
      # transform.lua:537: the regex bit (51) outranks methods + a prefix.
      - {name: regex-only, paths: ["~/r"], hosts: ["*.rx"]}
      - {name: method-prefix, methods: [GET], paths: [/r], hosts: ["*.rx"]}
      # transform.lua:657: regex_priority shifted as 32 bits; -1 sign-extends over every bit.
      - {name: rp-minus-one, paths: ["~/p/1"], regex_priority: -1}
      - {name: rp-five, paths: ["~/p/\\\\d"], regex_priority: 5}
      # 8192 << 19 is 2^32: nothing is left of it, so regex_priority 1 wins.
      - {name: rp-8192, paths: ["~/q/1"], regex_priority: 8192}
      - {name: rp-one, paths: ["~/q/\\\\d"], regex_priority: 1}
      # transform.lua:383-398: hosts as written, compared case-sensitively.
      - {name: cased, hosts: [Cased.test]}
      # transform.lua:384-396 and fields.lua:129-137: a route host's port is the request's.
      - {name: ported, hosts: ["ported.test:8080"]}
      # transform.lua:296-303: `$` is Rust's, the very end only.
      - {name: dollar, paths: ["~/end$"]}
      # utils.lua:34-52: the rest of the path loses a leading ".." or "../".
      - {name: api, paths: [/api]}
      # ties go to the higher id (atc-router walks (priority, id) backwards).
      - {name: low-id, id: 00000000-0000-4000-8000-000000000001, paths: [/tie]}
      - {name: high-id, id: 00000000-0000-4000-8000-000000000002, paths: [/tie]}
      # without ids, Kong's declarative id uuid5(uuid5(fd02801f-…, "routes"), name):
      # a = f3ef8bde…, b = 5123265e… (declarative_config.lua:544-556), so "a" wins.
      - {name: b, paths: [/named]}
      - {name: a, paths: [/named]}
"""


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(declarative.parse(CONFIG))


@pytest.mark.parametrize(
    ("method", "host", "path", "route", "upstream"),
    [
        ("GET", "plain.test", "/x", "plain-host", "/s/x"),
        ("GET", "other.test", "/x", "three-fields", "/s"),
        ("GET", "a.rx", "/r", "regex-only", "/s"),
        ("GET", "x.test", "/p/1", "rp-minus-one", "/s"),
        ("GET", "x.test", "/q/1", "rp-one", "/s"),
        ("GET", "Cased.test", "/", "cased", "/s"),  # utils.lua:181-186: "/" adds nothing
        ("GET", "cased.test", "/", None, None),
        ("GET", "ported.test:8080", "/", "ported", "/s"),
        ("GET", "ported.test:9000", "/", None, None),
        ("GET", "x.test", "/end", "dollar", "/s"),
        ("GET", "x.test", "/end%0A", None, None),
        ("GET", "x.test", "/api..", "api", "/s"),
        ("GET", "x.test", "/api../x", "api", "/s/x"),
        ("GET", "x.test", "/tie", "high-id", "/s"),
        ("GET", "x.test", "/named", "a", "/s"),
    ],
)
def test_kong_differences(
    router: Router, method: str, host: str, path: str, route: str | None, upstream: str | None
) -> None:
    match = router.match(method, host, path, 8000)
    got = None if match is None else (match.route.name, match.upstream_path)
    assert got == (None if route is None else (route, upstream))


def test_route_port_against_the_server_port(router: Router) -> None:
    # fields.lua:131-137: without a port in Host, net.dst.port is the listening port.
    assert router.match("GET", "ported.test", "/", 8080) is not None
    assert router.match("GET", "ported.test", "/", 8000) is None


def test_differences_through_serve(tmp_path: Path) -> None:
    doc = yaml.safe_load(CONFIG)
    gateway = GatewayProcess(doc, tmp_path)
    try:
        with gateway.client() as client:
            for host, path, want in [
                ("plain.test", "/x", 502),  # plain-host: proxied (to a closed port)
                ("cased.test", "/", 404),
                ("x.test", "/end%0A", 404),
                ("x.test", "/end", 502),
            ]:
                assert client.get(path, headers={"Host": host}).status_code == want, (host, path)
    finally:
        gateway.stop()
