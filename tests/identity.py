"""Identity-side test servers: a real OpenID Provider (npm oidc-provider), the issuer as a
process, and a browser that logs in through the provider's own pages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urljoin

import httpx

from stack.processes import free_port, wait_for_port

from .harness import AUDIENCE, REPO, ServiceProcess

OIDC_DIR = REPO / "tests" / "oidc"
CLIENT_ID, CLIENT_SECRET = "authgate-test-client", "authgate-test-secret"


class OpenIdProvider:
    """oidc-provider on loopback; any login name signs in, and becomes `sub`."""

    def __init__(self, redirect_uri: str, log_dir: Path) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._log = (log_dir / f"oidc-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            ["node", str(OIDC_DIR / "provider.mjs"), str(self.port), CLIENT_ID, CLIENT_SECRET, redirect_uri],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=OIDC_DIR,
        )  # fmt: skip
        wait_for_port(self.port, self.process, timeout=30)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


class IssuerProcess(ServiceProcess):
    """`authgate-issuer` through its real entry point."""

    def __init__(
        self, env: Mapping[str, str], log_dir: Path, *, amqp_url: str, port: int | None = None
    ) -> None:
        port = port or free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
        defaults = {"AUTHGATE_PUBLIC_URL": f"http://127.0.0.1:{port}", "AUTHGATE_AUDIENCE": AUDIENCE,
                    "AUTHGATE_AMQP_URL": amqp_url}  # fmt: skip
        super().__init__("issuer", {**base, **defaults, **env}, log_dir, port=port)
        wait_for_port(self.port, self.process, timeout=30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).parent / "authgate-issuer"), *args]
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=30, check=False
        )


FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"', re.I)


def sign_in_at_provider(
    browser: httpx.Client, response: httpx.Response, login: str, stop_at: str | None = None
) -> httpx.Response:
    """From the provider's login page, sign in as `login` and consent; the response after
    the provider hands back to the issuer (all redirects followed), or, with `stop_at`,
    the provider's redirect to a URL starting with it (not followed)."""
    for prompt, fields in (("login", {"login": login, "password": "any"}), ("consent", {})):
        assert response.status_code == 200, (response.status_code, response.text[:300])
        match = FORM_ACTION.search(response.text)
        assert match, f"no {prompt} form in: {response.text[:300]}"
        url = urljoin(str(response.url), match.group(1))
        response = browser.post(
            url, data={"prompt": prompt, **fields}, follow_redirects=stop_at is None
        )
        while stop_at is not None and response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(stop_at):
                return response
            response = browser.get(location, follow_redirects=False)
        if "/interaction/" not in str(response.url):
            return response
    return response
    return response


def social_providers_yaml(fake_url_endpoints: dict[str, dict[str, str]], client_id: str) -> str:
    """providers.yml for the fake Kakao and GitHub (secrets from the environment)."""
    lines = ["providers:"]
    for name, endpoints in fake_url_endpoints.items():
        lines += [
            f"  - name: {name}",
            f"    type: {name}",
            f"    client_id: {client_id}",
            "    client_secret: {env: FAKE_PROVIDER_SECRET}",
            "    endpoints:",
            *(f"      {k}: {v}" for k, v in endpoints.items()),
        ]
    return "\n".join(lines) + "\n"
