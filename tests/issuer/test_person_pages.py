"""The pages' rules below the browser (issue 16), against the running issuer: sign-out
and the account page's forms need the session's CSRF token whatever the Origin, a person
can end only their own sessions, the language is chosen as catalogue.choose says, and the
brand settings are checked at start."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest

from authgate.config import ConfigError
from issuer.catalogue import LANGUAGES, MESSAGES, choose
from issuer.settings import load_settings

from ..social import Social, browser
from .corpus import fresh_email, register, sign_in

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _signed_in(social: Social, http: httpx.Client, email: str, password: str) -> None:
    assert sign_in(social, http, email, password).status_code == 303
    assert http.get(f"{social.issuer.url}/me").status_code == 200


def _account(social: Social) -> tuple[str, str]:
    email, password = fresh_email("page"), secrets.token_urlsafe(16)
    with browser() as http:
        assert register(social, http, email, password).status_code == 303
    return email, password


def test_sign_out_needs_the_sessions_token_even_from_origin_null(social: Social) -> None:
    email, password = _account(social)
    with browser() as http:
        _signed_in(social, http, email, password)
        page = http.get(f"{social.issuer.url}/_authgate/signout")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        token = CSRF.search(page.text)
        assert token is not None
        null = {"Origin": "null"}  # what a browser sends from a no-referrer page
        forged = http.post(f"{social.issuer.url}/_authgate/signout",
                           data={"csrf_token": "x" * 43}, headers=null)  # fmt: skip
        assert forged.status_code == 403 and "csrf_failed" in forged.text
        elsewhere = http.post(f"{social.issuer.url}/_authgate/signout",
                              data={"csrf_token": token[1]},
                              headers={"Origin": "https://evil.test"})  # fmt: skip
        assert elsewhere.status_code == 403
        assert http.get(f"{social.issuer.url}/me").status_code == 200  # still signed in
        done = http.post(f"{social.issuer.url}/_authgate/signout",
                         data={"csrf_token": token[1]}, headers=null)  # fmt: skip
        assert done.status_code == 303 and done.headers["location"] == "/_authgate/signed-out"
        assert "authgate_session=" in done.headers["set-cookie"]  # cleared
        assert http.get(f"{social.issuer.url}/me").status_code == 401


def test_the_account_page_ends_another_of_your_sessions_but_not_someone_elses(
    social: Social,
) -> None:
    email, password = _account(social)
    other_email, other_password = _account(social)
    with browser() as laptop, browser() as phone, browser() as stranger:
        _signed_in(social, laptop, email, password)
        _signed_in(social, phone, email, password)
        _signed_in(social, stranger, other_email, other_password)
        page = laptop.get(f"{social.issuer.url}/_authgate/account")
        assert page.status_code == 200 and page.text.count('action="/_authgate/sessions/end"') == 2
        token = CSRF.search(page.text)
        assert token is not None
        sids = re.findall(r'name="sid" value="([^"]+)"', page.text)
        theirs = re.findall(
            r'name="sid" value="([^"]+)"',
            stranger.get(f"{social.issuer.url}/_authgate/account").text,
        )
        refused = laptop.post(f"{social.issuer.url}/_authgate/sessions/end",
                              data={"csrf_token": token[1], "sid": theirs[0]})  # fmt: skip
        assert refused.status_code == 404
        assert stranger.get(f"{social.issuer.url}/me").status_code == 200
        # The first listed is this browser; the other is the phone's.
        ended = laptop.post(f"{social.issuer.url}/_authgate/sessions/end",
                            data={"csrf_token": token[1], "sid": sids[1]})  # fmt: skip
        assert ended.status_code == 303 and ended.headers["location"].endswith("?ended=1")
        assert phone.get(f"{social.issuer.url}/me").status_code == 401
        assert laptop.get(f"{social.issuer.url}/me").status_code == 200


def test_pages_for_someone_signed_out_send_them_to_sign_in(social: Social) -> None:
    with browser() as http:
        account = http.get(f"{social.issuer.url}/_authgate/account")
        assert account.status_code == 303
        assert account.headers["location"] == "/login?rd=%2F_authgate%2Faccount"
        forbidden = http.get(f"{social.issuer.url}/_authgate/forbidden")
        assert forbidden.status_code == 403 and "signed in as" not in forbidden.text


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "chosen"),
    [
        (None, None, "ko-KR,ko;q=0.9,en;q=0.8", "ko"),
        (None, None, "fr-FR, en;q=0.5, ko;q=0.4", "en"),
        (None, None, "en;q=0.2, ko;q=0.8", "ko"),  # by quality, not order
        (None, None, "ko;q=0, en", "en"),  # q=0: not acceptable (RFC 9110 §12.4.2)
        (None, None, "", "en"),
        (None, "ko", "en", "ko"),  # kept from a switch
        ("en", "ko", "ko", "en"),  # asked for now
        ("xx", None, "ko", "ko"),  # not one we speak: ignored
    ],
)
def test_the_language_is_chosen_as_asked_kept_or_offered(
    query: str | None, cookie: str | None, accept: str, chosen: str
) -> None:
    assert choose(query, cookie, accept) == chosen


def test_every_message_is_in_every_language() -> None:
    assert all(set(LANGUAGES) <= set(texts) for texts in MESSAGES.values())


def test_a_switch_is_remembered_and_said(social: Social) -> None:
    with browser() as http:
        page = http.get(f"{social.issuer.url}/login", params={"lang": "ko"})
        assert page.headers["content-language"] == "ko" and '<html lang="ko">' in page.text
        assert "authgate_lang=ko" in page.headers["set-cookie"]
        again = http.get(f"{social.issuer.url}/register")
        assert again.headers["content-language"] == "ko" and "계정 만들기" in again.text


def test_brand_settings_are_checked_at_start(social: Social) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings((), {"AUTHGATE_BRAND_COLOR": "blue", "AUTHGATE_LOGO_URL": "http://x/l.png"})
    problems = "\n".join(refused.value.problems)
    assert "not a colour written #rrggbb" in problems and "must be an https URL" in problems
    css = httpx.get(f"{social.issuer.url}/_authgate/static/authgate.css")
    assert css.status_code == 200 and "--accent: #1f5fbf;" in css.text
    assert httpx.get(f"{social.issuer.url}/_authgate/static/other.css").status_code == 404


def test_a_long_return_url_is_kept_not_refused(social: Social) -> None:
    """Over 2 048 characters, `rd` travels between the pages as a token for its copy in
    Redis, and the sign-in ends on it all the same."""
    email, password = _account(social)
    long_rd = "/deep?" + "&".join(f"k{i}={'v' * 40}" for i in range(100))
    assert len(long_rd) > 4000
    with browser() as http:
        page = http.get(f"{social.issuer.url}/login", params={"rd": long_rd})
        carried = re.search(r'name="rd" value="(~[^"]+)"', page.text)
        assert carried is not None and len(carried[1]) < 40
        token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
        assert token is not None
        done = http.post(f"{social.issuer.url}/login/local",
                         data={"rd": carried[1], "login_csrf": token[1], "email": email,
                               "password": password})  # fmt: skip
        assert done.status_code == 303 and done.headers["location"] == long_rd
        # A token that names nothing is no way out: the landing page.
        http.cookies.clear()
        made_up = http.get(f"{social.issuer.url}/register", params={"rd": "~nothing"})
        assert 'name="rd" value="/_authgate/account"' in made_up.text


def test_provider_buttons_follow_their_brand_rules(social: Social) -> None:
    """Kakao's login button guide: its yellow container and black symbol, and its own
    label in each language; GitHub with its mark; both keep the return URL."""
    with browser() as http:
        en = http.get(f"{social.issuer.url}/login", params={"rd": "/x"}).text
        ko = http.get(f"{social.issuer.url}/login", params={"rd": "/x", "lang": "ko"}).text
    assert 'class="button provider-kakao"' in en and "Login with Kakao" in en
    assert "카카오 로그인" in ko and "GitHub으로 로그인" in ko
    assert 'class="button provider-github"' in en and "Sign in with GitHub" in en
    assert 'href="/login/kakao?rd=/x"' in en
    css = httpx.get(f"{social.issuer.url}/_authgate/static/authgate.css").text
    assert ".provider-kakao { background: #fee500; color: rgba(0, 0, 0, 0.85);" in css
