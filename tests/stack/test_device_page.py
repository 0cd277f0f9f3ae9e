"""The device flow as a person meets it (issue 18): a command-line tool asks for a code,
the person opens the page in Debian's chromium at phone and desktop width, signs in,
types the code by keyboard, sees which tool asks and allows it; the tool gets the
person's tokens and calls the API through nginx, and the person ends that sign-in from
their account page. Screenshots go to run/browser/{width}-device-*.png."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from .browsing import accessible, expect_sign_in_returning_to, new_account, sign_in

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def tool(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A device client registered with the CLI against the stack's Redis."""
    env = {**os.environ, "AUTHGATE_REDIS_URL": redis_url,
           "AUTHGATE_KEYS_DIR": str(tmp_path_factory.mktemp("cli-keys"))}  # fmt: skip
    cli = Path(sys.executable).parent / "authgate-issuer"
    done = subprocess.run(
        [str(cli), "clients", "create", "acme-cli", "--device", "--json"], env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cid: str = json.loads(done.stdout)["client_id"]
    return cid


def test_a_person_allows_a_command_line_tool_and_ends_it_later(
    stack: str, tool: str, context: BrowserContext, width: str
) -> None:
    flow = httpx.post(f"{stack}/device_authorization", data={"client_id": tool}).json()
    assert flow["verification_uri"] == f"{stack}/_authgate/device"
    poll = {"grant_type": GRANT, "device_code": flow["device_code"], "client_id": tool}

    page = context.new_page()
    email, password = new_account(page, stack)

    page.goto(flow["verification_uri"])  # what the tool told the person to open
    expect_sign_in_returning_to(page, "/_authgate/device")
    sign_in(page, email, password)
    expect(page.get_by_role("heading", name="Sign in on a device")).to_be_visible()
    accessible(page, width, "device-1-enter-code")

    # Typed as a person might: lower case, a space instead of the dash.
    page.get_by_label("Code").focus()
    page.keyboard.type(flow["user_code"].lower().replace("-", " "))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Allow this sign-in?")).to_be_visible()
    expect(page.get_by_text(f"acme-cli asks to act as you ({email})")).to_be_visible()
    expect(page.get_by_text(flow["user_code"])).to_be_visible()  # to compare with the tool
    accessible(page, width, "device-2-confirm")
    assert httpx.post(f"{stack}/token", data=poll).json()["error"] == "authorization_pending"

    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="You're signed in on your device")).to_be_visible()
    accessible(page, width, "device-3-allowed")

    tokens = httpx.post(f"{stack}/token", data=poll)
    assert tokens.status_code == 200, tokens.text
    bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    assert httpx.get(f"{stack}/api/members", headers=bearer).status_code == 200

    page.goto(f"{stack}/_authgate/account")
    tool_row = page.locator("li", has_text="acme-cli")
    expect(tool_row).to_contain_text("device code")
    accessible(page, width, "device-4-account")
    tool_row.get_by_role("button", name="Sign out there").click()
    expect(page.get_by_text("That session has ended.")).to_be_visible()
    assert httpx.get(f"{stack}/api/members", headers=bearer).status_code == 401


def test_a_wrong_code_is_said_on_the_form(
    stack: str, tool: str, context: BrowserContext, width: str
) -> None:
    page = context.new_page()
    email, password = new_account(page, stack)
    page.goto(f"{stack}/_authgate/device?user_code=BCDF-GHJK")
    sign_in(page, email, password)
    expect(page.get_by_label("Code")).to_have_value("BCDF-GHJK")  # kept through sign-in
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("That code isn't valid")
    expect(page.get_by_label("Code")).to_have_attribute("aria-invalid", "true")
    accessible(page, width, "device-5-wrong-code")
