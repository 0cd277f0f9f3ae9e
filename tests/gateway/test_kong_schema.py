"""`authgate-gateway validate` against Kong 3.9.1's own schema spec examples.

Every case of kong_schema_cases.yml becomes one entity of one kong.yml (services, routes on
a base service, upstreams, targets, consumers, plugins), each with a name of its own unless
the case names it; one real `validate` run judges them all, and each error line's path says
which case it belongs to. A case is refused when any line points into its entity.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..gateway_harness import run_gateway

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "kong_schema_cases.yml").read_text(encoding="utf-8")
)
# Where each kind of case goes in the file; `{i}` is its index within that kind.
_SECTION = {
    "service": "services",
    "route": "routes",
    "upstream": "upstreams",
    "target": "upstreams",
    "consumer": "consumers",
    "plugin": "plugins",
}


def _document() -> tuple[dict[str, Any], dict[str, int]]:
    """The kong.yml holding every case, and each entity's path → the case's index."""
    doc: dict[str, Any] = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "base",
                "url": "http://example.com",
                "routes": [{"name": "base-route", "paths": ["/base"]}],
            }
        ],
        "consumers": [{"username": "base-consumer"}],
        "routes": [],
        "upstreams": [],
        "plugins": [],
    }
    where: dict[str, int] = {}
    for index, case in enumerate(CASES):
        entity, value = case["entity"], dict(case["value"])
        if entity == "service":
            value.setdefault("name", f"case-{index}")
        elif entity == "route":
            value.setdefault("name", f"case-{index}")
            value.setdefault("service", "base")
            if value["service"] is None:
                del value["service"]
        elif entity == "target":
            value = {"name": f"case-{index}.test", "targets": [value]}
        items = doc[_SECTION[entity]]
        where[f"{_SECTION[entity]}[{len(items)}]"] = index
        items.append(value)
    return doc, where


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, list[str]]]:
    doc, where = _document()
    path = tmp_path_factory.mktemp("kong-schema") / "kong.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    result = run_gateway("validate", str(path))
    found: dict[int, list[str]] = {}
    unplaced = []
    for line in result.stderr.splitlines()[1:]:
        entity = re.match(r"\s+(\w+\[\d+\])", line)
        if entity is None or entity[1] not in where:
            unplaced.append(line)
            continue
        found.setdefault(where[entity[1]], []).append(line.strip())
    assert not unplaced, f"error lines outside any case: {unplaced}"
    assert result.returncode == (1 if found else 0), result.stderr
    yield found


@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[f"{c['kong'].split('/')[-1]}" for c in CASES]
)
def test_validate_agrees_with_kong(refused: dict[int, list[str]], index: int) -> None:
    case = CASES[index]
    verdict = "refuse" if index in refused else "accept"
    assert verdict == case["kong_verdict"], (case, refused.get(index))


def test_cases_cite_kong() -> None:
    for case in CASES:
        assert re.fullmatch(r"spec/01-unit/01-db/01-schema/\d\d-\w+_spec\.lua:\d+", case["kong"])


@pytest.mark.parametrize(
    "data",
    [
        b'_format_version: "3.0"\nservices:\n  - name: \xff\xfe\n',  # not UTF-8
        b"\x00\x01\x02",
        b"- 1\n- 2\n",
        b'_format_version: "3.0"\nservices: {a: 1}\n',
        b'_format_version: "3.0"\nservices: [[1]]\n',
        b'_format_version: "3.0"\n1: 2\nservices: [{name: 1, routes: 5, host: [x]}]\n',
        b'_format_version: "3.0"\nroutes: [{paths: {x: 1}, hosts: [1], methods: 7}]\n',
        b'_format_version: "3.0"\nupstreams: [{name: u, targets: [{target: 1}, 5]}]\n',
        b'_format_version: "3.0"\nservices: [{host: x, routes: [{paths: ["~/(?<=a)b"]}]}]\n',
        bytes(range(256)),
    ],
)
def test_any_bytes_give_error_lines(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "kong.yml"
    path.write_bytes(data)
    result = run_gateway("validate", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(r"\d+ error\(s\)\n  \S", result.stderr), result.stderr
