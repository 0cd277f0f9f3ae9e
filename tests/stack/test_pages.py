"""The issuer's pages as a person uses them (issue 16), in Debian's chromium at phone and
desktop width on the assembled stack: sign-in and sign-up with their errors, the account
page, sign-out, the 403 page, Korean, the keyboard alone. Every page is checked with
axe-core and, at phone width, for overflow, 16 px inputs and 44 px controls; screenshots
go to run/browser/pages-*.png."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from .browsing import WIDTHS, accessible, expect_sign_in_returning_to, new_account, sign_in

PASSWORD_FIELD = "Password"


def test_errors_are_said_on_the_form_which_keeps_the_email_and_the_way_back(
    stack: str, context: BrowserContext, width: str
) -> None:
    page = context.new_page()
    deep = f"{stack}/members/?view=mine"
    page.goto(f"{deep}#new-heading")  # the fragment must survive the whole round trip
    expect_sign_in_returning_to(page, deep)
    accessible(page, width, "pages-1-sign-in")

    page.get_by_role("link", name="Create an account").click()
    accessible(page, width, "pages-2-sign-up")
    email, password = f"e-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(16)
    page.get_by_label("Email").fill(email)
    page.get_by_label(PASSWORD_FIELD).fill("password12")  # on the blocklist
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_contain_text("Please check what you entered")
    expect(page.get_by_label("Email")).to_have_value(email)  # kept
    expect(page.get_by_label(PASSWORD_FIELD)).to_have_value("")  # never sent back
    accessible(page, width, "pages-3-sign-up-error")
    page.get_by_label(PASSWORD_FIELD).fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("If that email had no account")).to_be_visible()

    sign_in(page, email, "not the password")
    expect(page.get_by_role("alert")).to_have_text(
        "That email and password don't match an account."
    )
    expect(page.locator("#email")).to_have_value(email)
    accessible(page, width, "pages-4-sign-in-error")
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{deep}#new-heading")  # where they were going, fragment too


def test_account_page_and_sign_out(stack: str, context: BrowserContext, width: str) -> None:
    page = context.new_page()
    email, password = new_account(page, stack)
    page.goto(f"{stack}/login")  # opened directly: no page to go back to
    sign_in(page, email, password)
    expect(page).to_have_url(f"{stack}/_authgate/account")  # the landing page
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    expect(page.get_by_text("This browser")).to_be_visible()
    accessible(page, width, "pages-5-account")
    # Signed in already, the sign-in page sends the person straight on.
    page.goto(f"{stack}/login?rd=%2Fmembers%2F")
    expect(page).to_have_url(f"{stack}/members/")

    page.goto(f"{stack}/_authgate/account")
    page.get_by_role("link", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    accessible(page, width, "pages-6-sign-out")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    accessible(page, width, "pages-7-signed-out")
    # Back shows nothing from the cache: the member page asks again and is sent to sign in.
    page.go_back()
    page.goto(f"{stack}/members/")
    expect_sign_in_returning_to(page, f"{stack}/members/")


def test_the_403_page_says_who_and_offers_a_way_on(
    stack: str, context: BrowserContext, width: str
) -> None:
    page = context.new_page()
    email, password = new_account(page, stack)
    page.goto(f"{stack}/login?rd=%2Fadmin%2F")
    sign_in(page, email, password)
    expect(page.get_by_role("heading", name="You don't have access to this page")).to_be_visible()
    expect(page.get_by_text(f"You're signed in as {email}.")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in as someone else")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "en"
    accessible(page, width, "pages-8-forbidden")
    assert page.request.get(f"{stack}/admin/").status == 403  # a page, and still a 403


def test_korean_by_the_browser_and_english_by_the_switch(
    stack: str, browser: Browser, width: str
) -> None:
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, locale="ko-KR",
                                  bypass_csp=True)  # fmt: skip
    page = context.new_page()
    page.goto(f"{stack}/members/")
    expect(page.get_by_role("heading", name="로그인")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "ko"
    accessible(page, width, "pages-9-sign-in-ko")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{stack}/register")  # the choice is remembered
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    context.close()


def test_sign_up_sign_in_and_sign_out_by_keyboard_alone(
    stack: str, context: BrowserContext, width: str
) -> None:
    """Tab, type, Enter: no mouse anywhere, and the focus always visible."""
    page = context.new_page()
    email, password = f"k-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(16)
    page.goto(f"{stack}/register")
    page.get_by_label("Email").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")  # name (optional)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.get_by_text("If that email had no account")).to_be_visible()

    page.goto(f"{stack}/members/")
    # The email field has the focus on arrival (given by the page's deferred script: wait
    # for it, or the first keys typed go nowhere on a busy machine).
    expect(page.locator("#email")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{stack}/members/")

    page.goto(f"{stack}/_authgate/signout")
    page.keyboard.press("Tab")  # the product's name, home
    page.keyboard.press("Tab")  # the sign-out button
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Sign out", focused
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()


def test_the_error_page_says_what_happened_and_offers_a_way_on(
    stack: str, context: BrowserContext, width: str
) -> None:
    page = context.new_page()
    answer = page.goto(f"{stack}/callback/nowhere?state=x&code=y")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="Sign-in didn't work")).to_be_visible()
    expect(page.get_by_role("link", name="Start again")).to_have_attribute(
        "href", "/login?rd=/_authgate/account"
    )
    accessible(page, width, "pages-10-error")


def test_the_accessibility_check_can_fail(context: BrowserContext, width: str) -> None:
    """The checks above are not vacuous: a page without a language, an image without
    alternative text and a tiny control is refused."""
    page = context.new_page()
    page.set_content('<html><body><img src="x.png"><a href="#">x</a></body></html>')
    with pytest.raises(AssertionError, match="image-alt"):
        accessible(page, width, "pages-0-bad")
