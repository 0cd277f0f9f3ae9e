"""Protected requests through real nginx (the project's example config) and the verifier."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from issuer.signing import SigningKey

from ..harness import LOGIN_URL, Sessions, mint
from ..rawhttp import request


def echoed(response: httpx.Response) -> dict[str, list[str]]:
    """Headers the upstream received, name → every value."""
    assert response.status_code == 200, response.text
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


def test_live_session_reaches_upstream_with_identity(
    nginx: str, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    sid = sessions.create("alice", roles=["editor", "viewer"], scope="read write",
                          email="alice@example.test", name="Alice Kim")  # fmt: skip
    response = client.get(
        f"{nginx}/docs/1", headers={"Authorization": f"Bearer {mint(signing_key, sid, 'alice')}"}
    )
    headers = echoed(response)
    assert headers["x-auth-user"] == ["alice"]
    assert headers["x-auth-email"] == ["alice@example.test"]
    assert headers["x-auth-name"] == ["Alice Kim"]
    assert headers["x-auth-roles"] == ["editor viewer"]
    assert headers["x-auth-scopes"] == ["read write"]
    assert headers["x-auth-session"] == [sid]


def test_a_service_account_is_named_by_x_auth_client_and_kind_never_as_a_user(
    nginx: str, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    cid = "agc_reportsjob00001"
    sid = sessions.create(cid, roles=["reporter"], scope="members:read", email="", name="Reports",
                          extra={"kind": "client", "client": cid})  # fmt: skip
    bearer = {"Authorization": f"Bearer {mint(signing_key, sid, cid, client_id=cid)}"}
    headers = echoed(client.get(f"{nginx}/api/stats", headers=bearer))
    assert headers["x-auth-kind"] == ["client"]
    assert headers["x-auth-client"] == [cid]
    assert headers["x-auth-scopes"] == ["members:read"]
    assert "x-auth-user" not in headers  # X-Auth-User names people only
    # A location for people refuses it; one for clients refuses a person.
    assert client.get(f"{nginx}/api/members/x", headers=bearer).status_code == 403
    person = sessions.create("alice")
    as_person = {"Authorization": f"Bearer {mint(signing_key, person, 'alice')}"}
    assert client.get(f"{nginx}/api/stats", headers=as_person).status_code == 403
    assert echoed(client.get(f"{nginx}/docs/1", headers=as_person))["x-auth-kind"] == ["user"]


def test_session_cookie_is_checked_like_a_bearer_token(
    nginx: str, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    sid = sessions.create("carol")
    token = mint(signing_key, sid, "carol")
    response = client.get(
        f"{nginx}/home", headers={"Cookie": f"theme=dark; authgate_session={token}"}
    )
    assert echoed(response)["x-auth-user"] == ["carol"]


def test_api_client_without_credential_gets_401_with_challenge(
    nginx: str, client: httpx.Client
) -> None:
    response = client.get(f"{nginx}/api/items")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="authgate"'


def test_api_client_with_bad_token_gets_invalid_token(nginx: str, client: httpx.Client) -> None:
    response = client.get(f"{nginx}/api/items", headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_browser_without_session_is_sent_to_login_with_the_original_url(
    nginx: str, client: httpx.Client
) -> None:
    response = client.get(f"{nginx}/reports/q3?year=2026&x=%2F")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == LOGIN_URL
    host = urlsplit(nginx).netloc
    assert parse_qs(location.query)["rd"] == [f"http://{host}/reports/q3?year=2026&x=%2F"]
    assert response.headers["cache-control"] == "no-store"


def test_public_path_needs_no_session_but_passes_identity_when_present(
    nginx: str, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    anonymous = echoed(client.get(f"{nginx}/public/page", headers={"X-Auth-User": "mallory"}))
    assert "x-auth-user" not in anonymous
    sid = sessions.create("dave")
    known = echoed(
        client.get(
            f"{nginx}/public/page",
            headers={"Authorization": f"Bearer {mint(signing_key, sid, 'dave')}"},
        )
    )
    assert known["x-auth-user"] == ["dave"]


def test_admin_path_refuses_a_user_without_the_role(
    nginx: str, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    user = mint(signing_key, sessions.create("erin", roles=["viewer"]), "erin")
    admin = mint(signing_key, sessions.create("frank", roles=["admin"]), "frank")
    assert (
        client.get(f"{nginx}/admin/users", headers={"Authorization": f"Bearer {user}"}).status_code
        == 403
    )
    ok = client.get(f"{nginx}/admin/users", headers={"Authorization": f"Bearer {admin}"})
    assert echoed(ok)["x-auth-roles"] == ["admin"]


def test_scope_rule_refuses_writes_without_the_scope(
    nginx: str, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    reader = mint(signing_key, sessions.create("gina", scope="api:read"), "gina")
    writer = mint(signing_key, sessions.create("hank", scope="api:read api:write"), "hank")
    refused = client.post(
        f"{nginx}/api/items", headers={"Authorization": f"Bearer {reader}"}, content=b"{}"
    )
    assert refused.status_code == 403
    assert (
        client.get(f"{nginx}/api/items", headers={"Authorization": f"Bearer {reader}"}).status_code
        == 200
    )
    accepted = client.post(
        f"{nginx}/api/items", headers={"Authorization": f"Bearer {writer}"}, content=b"{}"
    )
    assert echoed(accepted)["x-auth-user"] == ["hank"]


def test_client_sent_identity_and_control_headers_never_reach_the_upstream(
    nginx: str, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    spoofed = {
        "X-Auth-User": "root",
        "X-Auth-Email": "root@evil.test",
        "X-Auth-Name": "Root",
        "X-Auth-Roles": "admin",
        "X-Auth-Scopes": "api:write",
        "X-Auth-Session": "stolen",
        "X-Auth-Client": "agc_forgedforgedforg",
        "X-Auth-Kind": "client",
        "X-Authgate-Policy": "public",
        "X-Authgate-Login": "https://evil.test/",
        "X-Original-URI": "/public/x",
        "X-Original-Method": "GET",
    }
    sid = sessions.create("ivan", roles=["viewer"])
    token = mint(signing_key, sid, "ivan")
    for path in ("/public/page", "/docs/1"):
        headers = echoed(
            client.get(nginx + path, headers={**spoofed, "Authorization": f"Bearer {token}"})
        )
        assert headers["x-auth-user"] == ["ivan"]
        assert headers["x-auth-roles"] == ["viewer"]
        assert headers["x-auth-session"] == [sid]
        assert headers["x-auth-kind"] == ["user"]
        for name in ("x-auth-email", "x-auth-name"):
            assert headers[name] != [spoofed[name.title()]]
        for name in (
            "x-auth-scopes",
            "x-auth-client",
            "x-authgate-policy",
            "x-authgate-login",
            "x-original-uri",
            "x-original-method",
        ):
            assert name not in headers, name


def test_spoofed_control_headers_never_reach_the_verifier(nginx: str, client: httpx.Client) -> None:
    # Had the verifier seen these, it would have judged /admin/ as public and answered 204.
    spoofed = {
        "X-Authgate-Policy": "public",
        "X-Original-URI": "/public/x",
        "X-Original-Method": "GET",
        "X-Forwarded-Host": "public.example.test",
        "X-Auth-User": "root",
        "X-Auth-Roles": "admin",
    }
    assert client.get(f"{nginx}/api/admin", headers=spoofed).status_code == 401
    assert client.get(f"{nginx}/admin/", headers=spoofed).status_code == 302


def test_dot_segments_cannot_turn_a_protected_path_public(nginx: str) -> None:
    """Sent raw (httpx would resolve them): refused, never judged one way and forwarded
    another (tests/nginx/test_paths.py has the rest)."""
    for path in (
        "/public/../docs/secret",
        "/public/%2e%2e/docs/secret",
        "/public/..%2Fdocs/secret",
    ):
        assert request(int(nginx.rsplit(":", 1)[1]), path).status == 400, path


def test_duplicate_authorization_headers_are_refused_by_nginx(
    nginx: str, client: httpx.Client
) -> None:
    response = client.get(
        f"{nginx}/api/items", headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")]
    )
    assert response.status_code == 400
