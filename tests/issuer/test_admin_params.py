"""Finding 8 of issue 12: a huge admin list cursor reached Redis, which refused it, and the
issuer answered 503 and logged an outage. Every query parameter of the admin API is
checked first: a bad one is a 400 problem+json (RFC 9457), never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ..social import Social
from .corpus import corpus, fill


@pytest.mark.parametrize("query", corpus("admin_list_queries"), ids=lambda q: q[:40])
def test_bad_list_parameters_are_400_problems(
    social: Social, admin: httpx.Client, query: str
) -> None:
    answer = admin.get(f"{social.issuer.url}/admin/users?{fill(query)}")
    assert answer.status_code == 400, (query, answer.status_code, answer.text[:200])
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == 400 and problem["error"] == "invalid_request"
    assert problem["title"] and problem["detail"] and problem["type"]


@pytest.mark.parametrize("url", corpus("admin_urls"), ids=lambda u: u[:40])
def test_hostile_admin_urls_are_4xx(social: Social, admin: httpx.Client, url: str) -> None:
    answer = admin.get(f"{social.issuer.url}{fill(url)}")
    assert 400 <= answer.status_code < 500, (url, answer.status_code)


def test_no_outage_is_logged_and_good_queries_still_work(
    social: Social, admin: httpx.Client
) -> None:
    for query in corpus("admin_list_queries"):
        admin.get(f"{social.issuer.url}/admin/users?{fill(query)}")
    assert "redis unavailable" not in social.issuer.log()
    page = admin.get(f"{social.issuer.url}/admin/users", params={"limit": 2, "cursor": 0})
    assert page.status_code == 200 and len(page.json()["users"]) <= 2
    assert admin.get(f"{social.issuer.url}/admin/users", params={"q": "kakao"}).status_code == 200
