"""The assembled stack (`bin/demo` on free ports) and Debian's chromium driven by
Playwright, shared by the browser journeys of this folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from stack.processes import free_port

from ..harness import REPO
from ..polling import wait_until
from .browsing import CHROMIUM, CHROMIUM_ARGS, WIDTHS


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


@pytest.fixture(params=list(WIDTHS))
def width(request: pytest.FixtureRequest) -> str:
    """Each page journey runs at phone and at desktop width."""
    return str(request.param)


@pytest.fixture
def context(browser: Browser, width: str) -> Iterator[BrowserContext]:
    w, h = WIDTHS[width]
    # axe-core is injected as a script: the pages' CSP would (rightly) refuse it.
    made = browser.new_context(viewport={"width": w, "height": h}, bypass_csp=True)
    yield made
    made.close()
