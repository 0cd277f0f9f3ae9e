"""Rules: compilation errors name their place; matching is first-match and segment-aware."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate.paths import normalize_host, normalize_path
from verifier.policy import (
    Access,
    PolicyError,
    compile_policy,
    load_policy,
)

from ..harness import POLICY_FILE

RULES = {
    "rules": [
        {"name": "health", "paths": ["/healthz"], "methods": ["GET"], "policy": "public"},
        {"name": "tenant", "hosts": ["*.tenants.test"], "paths": ["/"], "policy": "authenticated", "roles": ["member"]},
        {"name": "versioned", "paths": ["~^/api/v[0-9]+/admin(/|$)"], "policy": "deny"},
        {"name": "admin", "hosts": ["app.test"], "paths": ["/admin"], "policy": "authenticated",
         "roles": ["admin", "ops"], "scopes": ["a", "b"]},
        {"name": "rest", "paths": ["/"], "policy": "authenticated"},
    ]
}  # fmt: skip


def select(host: str, path: str, method: str = "GET") -> str | None:
    rule = compile_policy(RULES).select(host, path, method)
    return None if rule is None else rule.name


def test_first_match_wins_in_file_order() -> None:
    assert select("app.test", "/healthz") == "health"
    assert select("app.test", "/healthz", "POST") == "rest"
    assert select("app.test", "/admin/users") == "admin"
    assert select("other.test", "/admin/users") == "rest"


def test_prefix_matches_whole_segments_only() -> None:
    assert select("app.test", "/admin") == "admin"
    assert select("app.test", "/admin/") == "admin"
    assert select("app.test", "/administrator") == "rest"
    assert select("app.test", "/healthz/x") == "health"
    assert select("app.test", "/healthzx") == "rest"


def test_wildcard_host_matches_subdomains_not_the_apex() -> None:
    assert select("a.tenants.test", "/x") == "tenant"
    assert select("a.b.tenants.test", "/x") == "tenant"
    assert select("tenants.test", "/x") == "rest"
    assert select("eviltenants.test", "/x") == "rest"


def test_regex_paths() -> None:
    assert select("app.test", "/api/v2/admin/users") == "versioned"
    assert select("app.test", "/api/v2/admin") == "versioned"
    assert select("app.test", "/api/v2/administrators") == "rest"


def test_no_match_is_none_which_the_verifier_denies() -> None:
    policy = compile_policy({"rules": [{"name": "only", "paths": ["/only"], "policy": "public"}]})
    assert policy.select("app.test", "/elsewhere", "GET") is None


def test_roles_any_of_scopes_all_of() -> None:
    rule = compile_policy(RULES).by_name["admin"]
    assert rule.allows(frozenset({"ops"}), frozenset({"a", "b", "c"}), "user")
    assert not rule.allows(frozenset({"ops"}), frozenset({"a"}), "user")
    assert not rule.allows(frozenset({"viewer"}), frozenset({"a", "b"}), "user")
    assert rule.allows(frozenset({"ops"}), frozenset({"a", "b"}), "client")  # no kind: both
    only = compile_policy({"rules": [{"name": "p", "policy": "authenticated", "kind": "user"}]})
    assert only.rules[0].restricted
    assert only.rules[0].allows(frozenset(), frozenset(), "user")
    assert not only.rules[0].allows(frozenset(), frozenset(), "client")


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/..%2Fadmin", "/admin"),
        ("/public/%2E%2E%2fadmin/x?y=1", "/admin/x"),
        ("//admin", "/admin"),
        ("///admin//x/", "/admin/x/"),
        ("/./admin", "/admin"),
        ("/admin/./", "/admin/"),
        ("/../../admin", "/admin"),
        ("/a?next=/../b", "/a"),
        ("/a#frag", "/a"),
        ("http://evil.test/admin?x", "/admin"),
        ("admin", "/admin"),
        ("/%ff%fe", "/\ufffd\ufffd"),
    ],
)
def test_paths_are_normalized_as_nginx_does(raw: str, path: str) -> None:
    assert normalize_path(raw) == path


def test_hosts_lose_port_and_case() -> None:
    assert normalize_host("App.Test:8443") == "app.test"
    assert normalize_host("[::1]:8080") == "[::1]"
    assert normalize_host("app.test") == "app.test"


def test_every_problem_is_reported_with_its_place() -> None:
    with pytest.raises(PolicyError) as caught:
        compile_policy(
            {
                "rules": [
                    {"name": "a", "policy": "maybe", "paths": ["admin", "~(unclosed"]},
                    {"name": "a", "policy": "public", "roles": ["x"]},
                    {
                        "name": "bad name!",
                        "policy": "deny",
                        "hosts": ["*.", "ex ample"],
                        "methods": ["g et"],
                    },
                    "not a mapping",
                    {"name": "c", "policy": "deny", "colour": "red", "paths": [1]},
                    {"name": "d", "policy": "authenticated", "kind": "robot"},
                    {"name": "e", "policy": "public", "kind": "client"},
                ],
                "extra": True,
            }
        )
    assert caught.value.problems == [
        "unknown top-level keys: extra",
        "rules[0].policy: must be one of public, authenticated, deny",
        "rules[0].paths[0]: 'admin' must start with / (or ~ for a regex)",
        "rules[0].paths[1]: bad regular expression: missing ), unterminated subpattern at position 0",
        "rules[1]: roles, scopes and kind apply only to policy: authenticated",
        "rules[2].name: required; 1-64 of letters, digits, _ . : -",
        "rules[2].hosts[0]: '*.' is not a host name",
        "rules[2].hosts[1]: 'ex ample' is not a host name or *.wildcard",
        "rules[2].methods[0]: 'G ET' is not an HTTP method",
        "rules[3]: must be a mapping",
        "rules[4].colour: unknown key",
        "rules[4].paths: must be a list of non-empty strings",
        "rules[5].kind: must be one of client, user (absent: both)",
        "rules[6]: roles, scopes and kind apply only to policy: authenticated",
    ]


def test_duplicate_names_and_empty_lists_are_refused() -> None:
    with pytest.raises(PolicyError, match=r"rules\[1\].name: 'x' is used by an earlier rule"):
        compile_policy(
            {"rules": [{"name": "x", "policy": "deny"}, {"name": "x", "policy": "deny"}]}
        )
    with pytest.raises(PolicyError, match="every request would be denied"):
        compile_policy({"rules": []})
    with pytest.raises(PolicyError, match="a list under `rules`"):
        compile_policy(["not", "a", "mapping"])


def test_files_that_are_not_yaml_are_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("rules: [\n  - {name: x\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(str(broken))


def test_the_example_policy_compiles() -> None:
    policy = load_policy(str(POLICY_FILE))
    assert [r.name for r in policy.rules] == [
        "public",
        "admin",
        "health",
        "members",
        "stats",
        "api-write",
        "signed-in",
    ]
    assert policy.by_name["public"].access is Access.PUBLIC


def test_original_url_for_the_login_redirect() -> None:
    from verifier.app import Request

    assert (
        Request(b"/a?b=1", b"GET", b"app.test", b"https", b"443").original_url()
        == b"https://app.test/a?b=1"
    )
    assert (
        Request(b"/a", b"GET", b"app.test", b"http", b"8080").original_url()
        == b"http://app.test:8080/a"
    )
    assert Request(None, None, b"app.test", None, None).original_url() == b"http://app.test/"
    # A port already in the host, or a port that is not a number, is not added.
    assert (
        Request(b"/", b"GET", b"app.test:9", b"http", b"8080").original_url()
        == b"http://app.test:9/"
    )
    assert Request(b"/", b"GET", b"app.test", b"http", b"80x").original_url() == b"http://app.test/"
