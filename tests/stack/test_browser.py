"""A person in a real browser (Debian's chromium, driven by Playwright) on the assembled
stack `bin/demo` runs: nginx → verifier → gateway → the member service and the issuer.

The journey, at phone and desktop width: a deep link to the member page → sent to sign
in → sign up → sign in → back on the deep link → a member created from the page (through
the idempotency plugin) → sign out → the page is no longer shown. Screenshots of each step
go to run/browser/.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from stack.processes import free_port

from ..harness import REPO
from ..polling import wait_until

SHOTS = REPO / "run" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: As root in a sandbox without a network: no sandboxing, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}


@pytest.fixture(scope="module")
def stack(redis_url: str, amqp_url: str) -> Iterator[str]:
    """`bin/demo` on free ports, on the session's Redis and RabbitMQ; its nginx URL."""
    ports = {name: free_port() for name in ("nginx", "verifier", "issuer", "gateway",
                                            "members", "upstream")}  # fmt: skip
    flags = [f for name, port in ports.items() for f in (f"--{name}-port", str(port))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    log = (REPO / "run").joinpath("browser-demo.log")
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "stack.demo", *flags, "--redis-url", redis_url,
             "--amqp-url", amqp_url],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{ports['nginx']}"
    try:
        wait_until(lambda: "Ctrl-C stops the demo." in log.read_text(), 120,
                   lambda: f"the demo did not start:\n{log.read_text()}")  # fmt: skip
        yield base
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (bin/setup installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _shot(page: Page, width: str, step: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{width}-{step}.png"), full_page=True)


def _expect_sign_in_returning_to(page: Page, url: str) -> None:
    expect(page).to_have_url(re.compile(r"/login\?"))
    assert parse_qs(urlsplit(page.url).query)["rd"] == [url]
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def _no_horizontal_overflow(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} overflows by {overflow} px"


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
    _expect_sign_in_returning_to(page, deep)
    _shot(page, width, "1-sign-in")

    signup = page.locator('form[action="/register"]')
    signup.get_by_label("Email").fill(email)
    signup.get_by_label("Name").fill("Ada Lovelace")
    signup.get_by_label("Password").fill(password)
    signup.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("If that email had no account")).to_be_visible()
    _shot(page, width, "2-registered")

    signin = page.locator('form[action="/login/local"]')
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill(password)
    signin.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(deep)  # back where the person was going
    expect(page.locator("#who")).to_have_text(f"Signed in as {email}")
    expect(page.locator("#empty")).to_be_visible()
    _no_horizontal_overflow(page)
    _shot(page, width, "3-member-page")

    page.get_by_label("Display name").fill("Ada")
    page.get_by_label("Bio").fill("First programmer")
    page.get_by_role("button", name="Create member").click()
    expect(page.locator("#form-status")).to_have_text("Created.")
    expect(page.locator("#members li")).to_have_text(["Ada — First programmer"])
    _no_horizontal_overflow(page)
    _shot(page, width, "4-member-created")
    # The page's own request went through nginx, the verifier and the gateway: the
    # member is this person's, one of it.
    mine = page.request.get(f"{stack}/api/members").json()["members"]
    assert [m["display_name"] for m in mine] == ["Ada"]

    page.get_by_role("button", name="Sign out").click()
    _expect_sign_in_returning_to(page, f"{stack}/members/")
    _shot(page, width, "5-signed-out")
    # Signed out for real: the API refuses the browser's cookies now.
    assert page.request.get(f"{stack}/api/members").status == 401
    context.close()
