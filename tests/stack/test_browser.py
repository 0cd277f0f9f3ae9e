"""A person in a real browser (Debian's chromium, driven by Playwright) on the assembled
stack `bin/demo` runs: nginx → verifier → gateway → the member service and the issuer.

The journey, at phone and desktop width: a deep link to the member page → sent to sign
in → sign up → sign in → back on the deep link → a member created from the page (through
the idempotency plugin) → sign out → the page is no longer shown. Screenshots of each step
go to run/browser/.
"""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Browser, expect

from .browsing import WIDTHS, expect_sign_in_returning_to, no_horizontal_overflow, shot


@pytest.mark.parametrize("width", WIDTHS)
def test_a_person_signs_up_lands_on_the_deep_link_creates_a_member_and_signs_out(
    stack: str, browser: Browser, width: str
) -> None:
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h})
    page = context.new_page()
    deep = f"{stack}/members/?view=mine&from={width}"
    email, password = f"ada-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(16)

    page.goto(deep)
    expect_sign_in_returning_to(page, deep)
    shot(page, width, "1-sign-in")

    page.get_by_role("link", name="Create an account").click()
    signup = page.locator('form[action="/register"]')
    signup.get_by_label("Email").fill(email)
    signup.get_by_label("Name").fill("Ada Lovelace")
    signup.get_by_label("Password").fill(password)
    signup.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("If that email had no account")).to_be_visible()
    shot(page, width, "2-registered")

    signin = page.locator('form[action="/login/local"]')
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill(password)
    signin.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(deep)  # back where the person was going
    expect(page.locator("#who")).to_have_text(f"Signed in as {email}")
    expect(page.locator("#empty")).to_be_visible()
    no_horizontal_overflow(page)
    shot(page, width, "3-member-page")

    page.get_by_label("Display name").fill("Ada")
    page.get_by_label("Bio").fill("First programmer")
    page.get_by_role("button", name="Create member").click()
    expect(page.locator("#form-status")).to_have_text("Created.")
    expect(page.locator("#members li")).to_have_text(["Ada — First programmer"])
    no_horizontal_overflow(page)
    shot(page, width, "4-member-created")
    # The page's own request went through nginx, the verifier and the gateway: the
    # member is this person's, one of it.
    mine = page.request.get(f"{stack}/api/members").json()["members"]
    assert [m["display_name"] for m in mine] == ["Ada"]

    page.get_by_role("link", name="Sign out").click()  # authgate's page, on this host
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    shot(page, width, "5-signed-out")
    # Signed out for real: the API refuses the browser's cookies now, and the page sends
    # the browser to sign in again.
    assert page.request.get(f"{stack}/api/members").status == 401
    page.goto(f"{stack}/members/")
    expect_sign_in_returning_to(page, f"{stack}/members/")
    context.close()
