"""The member service's HTTP API, driven with the identity headers nginx would set."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from .members import MembersProcess, Names, identity

PROBLEM = "application/problem+json"


def user(name: str) -> str:
    """A user of this test alone (the service is shared by the module)."""
    return f"{name}-{secrets.token_hex(4)}"


def create(http: httpx.Client, owner: str, **body: Any) -> dict[str, Any]:
    response = http.post("/members", json={"display_name": "A", **body}, headers=identity(owner))
    assert response.status_code == 201, response.text
    member: dict[str, Any] = response.json()
    return member


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + code)
    assert body["title"] and body["detail"]
    return body


def test_create_read_update_delete(http: httpx.Client) -> None:
    alice = user("alice")
    created = http.post(
        "/members", json={"display_name": "Alice", "bio": "hi"}, headers=identity(alice)
    )
    assert created.status_code == 201
    member = created.json()
    assert member["owner"] == alice and member["display_name"] == "Alice" and member["bio"] == "hi"
    assert created.headers["location"] == f"members/{member['id']}"

    read = http.get(f"/members/{member['id']}", headers=identity(alice))
    assert read.status_code == 200 and read.json() == member

    patched = http.patch(f"/members/{member['id']}", json={"bio": None}, headers=identity(alice))
    assert patched.status_code == 200
    assert patched.json()["bio"] is None and patched.json()["display_name"] == "Alice"
    assert patched.json()["updated_at"] >= member["updated_at"]

    assert http.delete(f"/members/{member['id']}", headers=identity(alice)).status_code == 204
    assert_problem(http.get(f"/members/{member['id']}", headers=identity(alice)), 404, "not-found")
    assert_problem(
        http.delete(f"/members/{member['id']}", headers=identity(alice)), 404, "not-found"
    )


def test_list_shows_only_the_callers_own(http: httpx.Client) -> None:
    alice, bob = user("alice"), user("bob")
    mine = [create(http, alice, display_name=f"A{i}")["id"] for i in range(3)]
    create(http, bob)
    listed = http.get("/members", headers=identity(alice)).json()["members"]
    assert [m["id"] for m in listed] == mine


def test_admin_lists_everyone(http: httpx.Client) -> None:
    alice, bob = user("alice"), user("bob")
    ids = {create(http, alice)["id"], create(http, bob)["id"]}
    listed = http.get("/members", headers=identity(user("root"), "viewer admin")).json()["members"]
    assert ids <= {m["id"] for m in listed}
    assert {alice, bob} <= {m["owner"] for m in listed}


def test_bob_cannot_touch_alices_member(http: httpx.Client) -> None:
    alice, bob = user("alice"), user("bob")
    member = create(http, alice)
    path = f"/members/{member['id']}"
    assert_problem(http.delete(path, headers=identity(bob)), 403, "forbidden")
    assert_problem(http.patch(path, json={"bio": "x"}, headers=identity(bob)), 403, "forbidden")
    assert_problem(http.get(path, headers=identity(bob)), 403, "forbidden")
    # A role named like admin is not admin.
    assert_problem(http.delete(path, headers=identity(bob, "administrator")), 403, "forbidden")
    assert http.get(path, headers=identity(alice)).json() == member


def test_admin_may_change_and_delete_anyones(http: httpx.Client) -> None:
    member = create(http, user("alice"))
    admin = identity(user("root"), "admin")
    path = f"/members/{member['id']}"
    assert http.patch(path, json={"display_name": "Renamed"}, headers=admin).status_code == 200
    assert http.get(path, headers=admin).json()["display_name"] == "Renamed"
    assert http.delete(path, headers=admin).status_code == 204


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/members"), ("POST", "/members"), ("GET", "/members/x"),
     ("PATCH", "/members/x"), ("DELETE", "/members/x")],
)  # fmt: skip
def test_no_identity_is_401(http: httpx.Client, method: str, path: str) -> None:
    headers = identity("alice")
    del headers["X-Auth-User"]
    response = http.request(method, path, json={"display_name": "A"}, headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert_problem(http.request(method, path, headers={"X-Auth-User": ""}), 401, "unauthenticated")


def test_x_auth_user_twice_is_401(http: httpx.Client) -> None:
    response = http.get("/members", headers=[("X-Auth-User", "alice"), ("X-Auth-User", "bob")])
    assert_problem(response, 401, "unauthenticated")


def test_unknown_id_is_404(http: httpx.Client) -> None:
    alice = identity(user("alice"))
    for method in ("GET", "PATCH", "DELETE"):
        response = http.request(method, "/members/no-such-id", json={"bio": "x"}, headers=alice)
        assert_problem(response, 404, "not-found")


def test_routing_errors_are_problems_too(http: httpx.Client) -> None:
    assert_problem(http.get("/nothing-here", headers=identity("alice")), 404, "not-found")
    response = http.put("/members", headers=identity("alice"))
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["allow"]


def test_bad_json_is_400(http: httpx.Client) -> None:
    headers = {**identity(user("alice")), "Content-Type": "application/json"}
    assert_problem(
        http.post("/members", content=b'{"display_name": ', headers=headers), 400, "malformed-body"
    )
    assert_problem(
        http.post("/members", content=b"\xff\xfe", headers=headers), 400, "malformed-body"
    )


def test_not_json_is_415(http: httpx.Client) -> None:
    response = http.post("/members", data={"display_name": "A"}, headers=identity("alice"))
    assert_problem(response, 415, "unsupported-media-type")


def test_a_huge_body_is_413(http: httpx.Client) -> None:
    response = http.post(
        "/members", json={"display_name": "A", "bio": "x" * 20_000}, headers=identity("alice")
    )
    assert_problem(response, 413, "too-large")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["display_name"]),
        ({"display_name": ""}, ["display_name"]),
        ({"display_name": "x" * 101}, ["display_name"]),
        ({"display_name": "   "}, ["display_name"]),
        ({"display_name": 7}, ["display_name"]),
        ({"display_name": None}, ["display_name"]),
        ({"display_name": "A", "bio": "x" * 1001}, ["bio"]),
        ({"display_name": "A", "bio": 3}, ["bio"]),
        ({"display_name": "A", "owner": "mallory"}, ["owner"]),
        ({"display_name": "", "bio": [], "id": "x"}, ["id", "display_name", "bio"]),
    ],
)
def test_create_validation_is_422_with_every_error(
    http: httpx.Client, body: dict[str, Any], fields: list[str]
) -> None:
    body_ = assert_problem(
        http.post("/members", json=body, headers=identity("alice")), 422, "invalid"
    )
    assert sorted(e["field"] for e in body_["errors"]) == sorted(fields)


def test_limits_are_inclusive(http: httpx.Client) -> None:
    member = create(http, user("alice"), display_name="x" * 100, bio="y" * 1000)
    assert len(member["display_name"]) == 100 and len(member["bio"]) == 1000
    assert create(http, user("alice"), display_name="é")["display_name"] == "é"


@pytest.mark.parametrize(
    "body",
    [{}, {"display_name": None}, {"display_name": ""}, {"bio": "x" * 1001}, {"owner": "bob"}, []],
)
def test_patch_validation_is_422(http: httpx.Client, body: Any) -> None:
    alice = user("alice")
    member = create(http, alice)
    response = http.patch(f"/members/{member['id']}", json=body, headers=identity(alice))
    assert_problem(response, 422, "invalid")
    assert http.get(f"/members/{member['id']}", headers=identity(alice)).json() == member


def test_healthz_needs_no_identity(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["db"] == "ok"
    assert body["consumer"]["state"] == "consuming"


def test_members_survive_a_restart(amqp_url: str, tmp_path: Path) -> None:
    names = Names.unique()
    db = tmp_path / "data" / "members.db"  # a directory the service makes itself
    alice = user("alice")
    try:
        first = MembersProcess(db, amqp_url, names, tmp_path / "first.log")
        try:
            with httpx.Client(base_url=first.url, timeout=10) as http:
                member = create(http, alice, bio="kept")
                edited = http.patch(f"/members/{member['id']}", json={"display_name": "B"},
                                    headers=identity(alice)).json()  # fmt: skip
        finally:
            first.stop()
        second = MembersProcess(db, amqp_url, names, tmp_path / "second.log")
        try:
            with httpx.Client(base_url=second.url, timeout=10) as http:
                listed = http.get("/members", headers=identity(alice)).json()["members"]
        finally:
            second.stop()
    finally:
        names.clean_up(amqp_url)
    assert listed == [edited]


def test_the_page_is_static_own_origin_and_never_cached(http: httpx.Client) -> None:
    """The page for browsers (public /members/, the gateway maps it to /) holds no data
    and loads nothing from elsewhere; its script calls the API through nginx."""
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="page.js" defer>' in page.text and '<html lang="en">' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"  # not shown again after sign-out
    script = http.get("/page.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert '"Idempotency-Key": form.dataset.key' in script.text  # retries replay
    assert http.get("/page.css").headers["content-type"].startswith("text/css")
    assert http.get("/index.html").status_code == 404  # only the three files


def test_the_statistics_are_for_service_accounts_holding_their_scope(http: httpx.Client) -> None:
    create(http, user("carol"))
    job = {"X-Auth-Kind": "client", "X-Auth-Client": "agc_reportsjob00001",
           "X-Auth-Scopes": "members:read", "X-Auth-Roles": ""}  # fmt: skip
    answer = http.get("/stats", headers=job)
    assert answer.status_code == 200 and answer.json()["members"] >= 1
    person = {**identity(user("dave"), roles="admin"), "X-Auth-Kind": "user"}
    assert_problem(http.get("/stats", headers=person), 403, "forbidden")
    assert_problem(http.get("/stats", headers={**job, "X-Auth-Scopes": "other"}), 403, "forbidden")
    assert_problem(http.get("/stats"), 403, "forbidden")
