"""What the browser journeys share: the browser's settings, the two widths, screenshots,
and the checks every page must pass (layout at phone width, axe-core)."""

from __future__ import annotations

import re
import secrets
import shutil
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from ..harness import REPO

SHOTS = REPO / "run" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: As root in a sandbox without a network: no sandboxing, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}


AXE = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"


def shot(page: Page, width: str, step: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{width}-{step}.png"), full_page=True)


def expect_sign_in_returning_to(page: Page, url: str) -> None:
    expect(page).to_have_url(re.compile(r"/login\?"))
    assert parse_qs(urlsplit(page.url).query)["rd"] == [url]
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def no_horizontal_overflow(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} overflows by {overflow} px"


def accessible(page: Page, width: str, step: str) -> None:
    """axe-core finds nothing on the page; at phone width nothing overflows sideways,
    inputs are at least 16 px (else iOS zooms in) and every control at least 44 px tall.
    A screenshot of it goes to run/browser/ either way."""
    shot(page, width, step)
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html)}))"
    )
    assert violations == [], f"{page.url}: {violations}"
    if width != "phone":
        return
    no_horizontal_overflow(page)
    small: list[Any] = page.evaluate(
        """() => [...document.querySelectorAll('a, button, input:not([type=hidden]), textarea')]
            .filter(e => e.offsetParent !== null)
            .map(e => ({html: e.outerHTML.slice(0, 80), h: e.getBoundingClientRect().height,
                        font: parseFloat(getComputedStyle(e).fontSize), tag: e.tagName}))
            .filter(e => e.h < 44 || (e.tag !== 'A' && e.tag !== 'BUTTON' && e.font < 16))"""
    )
    assert small == [], f"{page.url}: too small to use on a phone: {small}"


def new_account(page: Page, stack: str) -> tuple[str, str]:
    """An account made through the sign-up page (which signs nobody in): email, password."""
    email, password = f"p-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(16)
    page.goto(f"{stack}/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("If that email had no account")).to_be_visible()
    return email, password


def sign_in(page: Page, email: str, password: str) -> None:
    """The local sign-in form of the page shown."""
    form = page.locator('form[action="/login/local"]')
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Sign in").click()
