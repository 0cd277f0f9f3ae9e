"""`authgate-gateway` through its real entry point: validate offline; ping/dump/diff/sync
against an Admin API in Kong's documented shapes; serve refusing what it cannot run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.processes import free_port

from ..fake_kong import FakeKong
from ..gateway_harness import kong_yml, run_gateway
from ..harness import REPO

BROKEN = """
_format_version: "3.0"
services:
  - name: ok
    url: http://127.0.0.1:1
    routes:
      - name: r1
        paths: ["/a", "b", "~/(unclosed"]
        methods: [get]
  - name: bad service
    host: 1
    port: 70000
    colour: blue
    routes:
      - name: r2
        hosts: ["*.example.*"]
        plugins:
          - name: idempotency
            config: {lock_seconds: 0, colour: red, methods: [GET], fail_open: "no"}
routes:
  - name: r1
    service: missing
    paths: ["/x"]
  - name: r3
    service: ok
plugins:
  - name: rate-limiting
upstreams:
  - name: up
    targets: [{target: "bad host:1"}]
"""


def test_validate_reports_every_error_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(BROKEN)
    result = run_gateway("validate", str(path))
    assert result.returncode == 1
    expected = [
        "services[0].routes[0].paths[1]: should start with: /",
        "services[0].routes[0].paths[2]: invalid regex",
        "services[0].routes[0].methods[0]: invalid value",
        "services[1].name: invalid value",
        "services[1].host: expected a string",
        "services[1].port: value should be between 0 and 65535",
        "services[1].colour: unknown field",
        "services[1].routes[0].hosts[0]: invalid wildcard: must have at most one wildcard",
        "services[1].routes[0].plugins[0].config.lock_seconds: value should be between 1 and 3600",
        "services[1].routes[0].plugins[0].config.colour: unknown field",
        "services[1].routes[0].plugins[0].config.methods[0]: expected one of: POST, PATCH, PUT, DELETE",
        "services[1].routes[0].plugins[0].config.fail_open: expected a boolean",
        "routes[0]: duplicate route name 'r1'",
        "routes[0].service: no service named 'missing'",
        "routes[1]: must set one of 'methods', 'hosts', 'paths'",
        "plugins[0].name: unknown plugin 'rate-limiting'",
        "upstreams[0].targets[0].target: Invalid target ('bad host:1'); not a valid hostname",
    ]
    for line in expected:
        assert line in result.stderr, f"missing {line!r} in:\n{result.stderr}"
    assert f"{len(expected)} error(s)" in result.stderr


def test_validate_the_projects_kong_yml() -> None:
    result = run_gateway("validate", str(REPO / "kong" / "kong.yml"))
    assert result.returncode == 0, result.stderr
    assert "valid (2 services, 5 routes, 1 plugins" in result.stdout


def test_validate_env_substitution_like_deck(tmp_path: Path) -> None:
    text = 'services:\n  - name: api\n    url: ${{ env "DECK_API_URL" }}\n_format_version: "3.0"\n'
    assert run_gateway("validate", "-", stdin=text, DECK_API_URL="http://api:8080").returncode == 0
    unset = run_gateway("validate", "-", stdin=text)
    assert (
        unset.returncode == 1
        and "line 3: environment variable DECK_API_URL is not set" in unset.stderr
    )
    wrong = run_gateway("validate", "-", stdin=text.replace("DECK_API_URL", "API_URL"), API_URL="x")
    assert wrong.returncode == 1 and "'API_URL' must start DECK_" in wrong.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services: [\n", "line 2, column 1: not valid YAML"),
        ("- just a list\n", "expected a mapping at the top level"),
        ('_format_version: "1.1"\n', '_format_version: must be "3.0"'),
        ('_format_version: "3.0"\nconsumer: []\n', "consumer: unknown top-level key"),
    ],
)
def test_validate_malformed_files(text: str, message: str) -> None:
    result = run_gateway("validate", "-", stdin=text)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_validate_missing_file(tmp_path: Path) -> None:
    result = run_gateway("validate", str(tmp_path / "nope.yml"))
    assert result.returncode == 1 and "cannot read: No such file or directory" in result.stderr


@pytest.fixture
def kong() -> Iterator[FakeKong]:
    server = FakeKong()
    yield server
    server.close()


def write(tmp_path: Path, doc: dict[str, Any], name: str = "kong.yml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def test_ping_and_unreachable(kong: FakeKong) -> None:
    ok = run_gateway("ping", "--kong-addr", kong.url)
    assert ok.returncode == 0 and "Kong version: 3.9.1" in ok.stdout
    down = run_gateway("ping", "--kong-addr", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "unreachable" in down.stderr


def test_diff_sync_cycle(kong: FakeKong, tmp_path: Path) -> None:
    plugin = {"redis_url": "redis://redis:6379/0"}
    file = write(tmp_path, kong_yml("http://demo-api:8081", plugin))
    first = run_gateway("diff", file, AUTHGATE_GATEWAY_KONG_ADDR=kong.url)
    assert first.returncode == 2, first.stderr
    for line in ("creating service api", "creating route writes", "creating route reads"):
        assert line in first.stdout
    assert "creating plugin idempotency@route=writes" in first.stdout
    assert "Summary: Created 4, Updated 0, Deleted 0" in first.stdout

    synced = run_gateway("sync", file, "--kong-addr", kong.url)
    assert synced.returncode == 0, synced.stderr
    assert kong.posts[-1]["query"] == {"check_hash": "1", "flatten_errors": "1"}
    assert run_gateway("diff", file, "--kong-addr", kong.url).returncode == 0
    again = run_gateway("sync", file, "--kong-addr", kong.url)
    assert again.returncode == 0 and "already runs this configuration" in again.stdout

    # A different file: the entity diff against Kong's export (ids resolved to names,
    # Kong's defaults not counted as changes).
    changed = kong_yml("http://demo-api:8081", plugin, read_timeout=5000)
    changed["services"][0]["routes"].pop()  # drop "reads"
    changed["services"][0]["routes"][0]["plugins"][0]["config"]["lock_seconds"] = 90
    other = write(tmp_path, changed, "changed.yml")
    diff = run_gateway("diff", other, "--kong-addr", kong.url)
    assert diff.returncode == 2, diff.stdout + diff.stderr
    assert "updating service api\n    read_timeout: 60000 -> 5000" in diff.stdout
    assert "deleting route reads" in diff.stdout
    assert "updating plugin idempotency@route=writes" in diff.stdout
    assert "Summary: Created 0, Updated 2, Deleted 1" in diff.stdout

    dump = run_gateway("dump", "--kong-addr", kong.url)
    assert dump.returncode == 0 and yaml.safe_load(dump.stdout)["services"][0]["name"] == "api"


def test_sync_waits_out_a_busy_kong(kong: FakeKong, tmp_path: Path) -> None:
    # Kong answers 429 + Retry-After while it still loads the previous config
    # (kong/api/routes/config.lua:151-157 at 3.9.1): sync waits and posts again.
    file = write(tmp_path, kong_yml("http://demo-api:8081", {"redis_url": "redis://r:6379/0"}))
    kong.busy, posts = 2, len(kong.posts)
    synced = run_gateway("sync", file, "--kong-addr", kong.url)
    assert synced.returncode == 0, synced.stderr
    assert len(kong.posts) == posts + 3 and "Loaded into Kong" in synced.stdout
    kong.busy = 10
    refused = run_gateway("sync", file, "--kong-addr", kong.url, "--timeout", "2")
    kong.busy = 0
    assert refused.returncode == 1 and "HTTP 429" in refused.stderr, refused.stderr


def test_sync_errors_point_at_the_file(tmp_path: Path) -> None:
    kong = FakeKong(enabled_plugins=())
    try:
        file = write(tmp_path, kong_yml("http://demo-api:8081", {"redis_url": "redis://r:6379/0"}))
        result = run_gateway("sync", file, "--kong-addr", kong.url)
        assert result.returncode == 1
        assert (
            "services[0].routes[0].plugins[0].name: plugin 'idempotency' not enabled"
            in result.stderr
        ), result.stderr
    finally:
        kong.close()


def test_admin_token_header(tmp_path: Path) -> None:
    kong = FakeKong(token="s3cret")
    try:
        refused = run_gateway("ping", "--kong-addr", kong.url)
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr
        ok = run_gateway("ping", "--kong-addr", kong.url, "--header", "Kong-Admin-Token: s3cret")
        assert ok.returncode == 0
        assert "s3cret" not in ok.stdout + ok.stderr
    finally:
        kong.close()


def test_serve_refuses_an_unknown_plugin(tmp_path: Path) -> None:
    doc = kong_yml("http://127.0.0.1:1")
    doc["plugins"] = [{"name": "rate-limiting", "config": {"minute": 5}}]
    result = run_gateway("serve", write(tmp_path, doc), "--port", str(free_port()))
    assert result.returncode == 1
    assert "plugins[0].name: unknown plugin 'rate-limiting'" in result.stderr
