"""API clients through the assembled stack (issue 18): a service account gets a token
with each client authentication method at nginx (→ gateway → issuer), calls the API for
clients through nginx (→ verifier → gateway → member service), is refused where people
only are admitted, and its token stops once the account is suspended."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from issuer.signing import SigningKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def issuer_cli(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {**os.environ, "AUTHGATE_REDIS_URL": redis_url,
           "AUTHGATE_KEYS_DIR": str(tmp_path_factory.mktemp("cli-keys"))}  # fmt: skip
    command = str(Path(sys.executable).parent / "authgate-issuer")

    def run(*args: str, stdin: str = "") -> dict[str, Any]:
        done = subprocess.run([command, "clients", *args, "--json"], env=env, input=stdin,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    return run


def test_each_authentication_method_reaches_the_api_for_clients(
    stack: str, issuer_cli: Any
) -> None:
    made = issuer_cli("create", "stats-job", "--scope", "members:read")
    cid, secret = made["client_id"], made["client_secret"]
    key = SigningKey.generate("EdDSA")
    issuer_cli("add-key", cid, "--jwk", "-", stdin=json.dumps(key.public_jwk()))
    now = int(time.time())
    assertion = key.sign({"iss": cid, "sub": cid, "aud": f"{stack}/token", "iat": now,
                          "exp": now + 60, "jti": secrets.token_urlsafe(12)}, typ="JWT")  # fmt: skip
    grant = {"grant_type": "client_credentials"}
    tokens = {
        "client_secret_basic": httpx.post(f"{stack}/token", data=grant, auth=(cid, secret)),
        "client_secret_post": httpx.post(f"{stack}/token", data={
            **grant, "client_id": cid, "client_secret": secret}),
        "private_key_jwt": httpx.post(f"{stack}/token", data={
            **grant, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}),
    }  # fmt: skip
    for method, answer in tokens.items():
        assert answer.status_code == 200, (method, answer.text)
        bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        stats = httpx.get(f"{stack}/api/stats", headers=bearer)
        assert stats.status_code == 200, (method, stats.text)
        assert isinstance(stats.json()["members"], int)
        assert httpx.get(f"{stack}/api/members", headers=bearer).status_code == 403, method

    bearer = {"Authorization": f"Bearer {tokens['private_key_jwt'].json()['access_token']}"}
    issuer_cli("suspend", cid)
    started = time.monotonic()
    while httpx.get(f"{stack}/api/stats", headers=bearer).status_code != 401:
        assert time.monotonic() - started < 5, "the token still works 5 s after suspension"
    print(f"suspended client's token refused {1000 * (time.monotonic() - started):.0f} ms later")
    again = httpx.post(f"{stack}/token", data=grant, auth=(cid, secret))
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"
