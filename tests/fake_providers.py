"""Kakao, GitHub and a bare OIDC provider as small local servers, answering in the shapes
those providers document (requests are checked the same way: form bodies, client
authentication, PKCE). Used where the real thing can't run here; each records what it
was sent, and can be told to fail the way the real provider fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .harness import _Server


@dataclass
class Grant:
    """What the authorize step would have issued: a code bound to its PKCE challenge."""

    code: str
    challenge: str
    redirect_uri: str
    nonce: str
    user: dict[str, Any]


@dataclass
class FakeState:
    grants: dict[str, Grant] = field(default_factory=dict)
    #: Access tokens issued, to the grant they came from.
    issued: dict[str, Grant] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    #: Next token-endpoint answer overridden: (status, body).
    token_failure: tuple[int, dict[str, Any]] | None = None
    api_failure: tuple[int, Any] | None = None
    #: Changes applied to the next ID token's claims, or a different signing key.
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    id_token_key: Any = None


def _s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


class FakeProvider(_Server):
    """One server playing Kakao (kauth + kapi), GitHub (github.com + api) and an OIDC OP."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.state = FakeState()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                outer.record(self, "")
                self._reply(
                    *outer.get(urlsplit(self.path).path, self.headers.get("Authorization", ""))
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                outer.record(self, body)
                self._reply(*outer.post(urlsplit(self.path).path, self.headers, body))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)

    def record(self, handler: BaseHTTPRequestHandler, body: str) -> None:
        with self.lock:
            self.state.requests.append((handler.command, handler.path, dict(handler.headers), body))

    def endpoints(self, kind: str) -> dict[str, str]:
        base = self.url
        return {
            "kakao": {"authorize": f"{base}/kakao/oauth/authorize", "token": f"{base}/kakao/oauth/token",
                      "userinfo": f"{base}/kakao/v2/user/me", "jwks": f"{base}/jwks"},
            "github": {"authorize": f"{base}/github/login/oauth/authorize",
                       "token": f"{base}/github/login/oauth/access_token",
                       "userinfo": f"{base}/github/user", "emails": f"{base}/github/user/emails"},
        }[kind]  # fmt: skip

    def grant(self, authorize_url: str, user: dict[str, Any]) -> str:
        """Play the authorize step for the URL the issuer redirected to; the code."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        assert query["client_id"] == self.client_id
        assert query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.state.grants[code] = Grant(code, query["code_challenge"], query["redirect_uri"],
                                        query.get("nonce", ""), user)  # fmt: skip
        return code

    def id_token(self, grant: Grant, sub: str, issuer: str) -> str:
        now = int(time.time())
        claims = {"iss": issuer, "aud": self.client_id, "sub": sub, "iat": now, "exp": now + 300,
                  "nonce": grant.nonce, "auth_time": now, **self.state.id_token_claims}  # fmt: skip
        key = self.state.id_token_key or self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "fake-key"})

    def get(self, path: str, authorization: str) -> tuple[int, Any]:
        if path == "/jwks":
            jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            return 200, {"keys": [{**jwk, "kid": "fake-key", "alg": "RS256", "use": "sig"}]}
        if self.state.api_failure is not None:
            failure, self.state.api_failure = self.state.api_failure, None
            return failure
        token = authorization.removeprefix("Bearer ")
        grant = self.state.issued.get(token)
        if grant is None:
            if path.startswith("/kakao"):
                return 401, {"msg": "this access token does not exist", "code": -401}
            return 401, {
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
            }
        if path == "/kakao/v2/user/me":
            return 200, grant.user
        if path == "/github/user":
            return 200, grant.user["user"]
        if path == "/github/user/emails":
            return 200, grant.user["emails"]
        return 404, {"message": "Not Found"}

    def post(self, path: str, headers: Any, body: str) -> tuple[int, Any]:
        form = {k: v[0] for k, v in parse_qs(body).items()}
        if self.state.token_failure is not None:
            failure, self.state.token_failure = self.state.token_failure, None
            return failure
        grant = self.state.grants.pop(form.get("code", ""), None)
        if path == "/kakao/oauth/token":
            if "application/x-www-form-urlencoded" not in headers.get("Content-Type", ""):
                return 400, {"error": "invalid_request", "error_code": "KOE400"}
            if form.get("client_secret") != self.client_secret:
                return 401, {"error": "invalid_client", "error_description": "Bad client credentials",
                             "error_code": "KOE010"}  # fmt: skip
            if grant is None or _s256(form.get("code_verifier", "")) != grant.challenge:
                return 400, {"error": "invalid_grant", "error_description": f"authorization code not found for code={form.get('code')}",
                             "error_code": "KOE320"}  # fmt: skip
            if form.get("redirect_uri") != grant.redirect_uri:
                return 400, {"error": "invalid_grant", "error_code": "KOE303"}
            answer = {"token_type": "bearer", "access_token": f"at-{grant.code}", "expires_in": 21599,
                      "refresh_token": "kakao-refresh", "refresh_token_expires_in": 5183999,
                      "scope": "openid profile_nickname account_email"}  # fmt: skip
            answer["id_token"] = self.id_token(
                grant, str(grant.user["id"]), "https://kauth.kakao.com"
            )
            self.state.issued[f"at-{grant.code}"] = grant
            return 200, answer
        if path == "/github/login/oauth/access_token":
            # GitHub answers errors with 200 and an `error` field.
            if form.get("client_secret") != self.client_secret:
                return 200, {"error": "incorrect_client_credentials",
                             "error_description": "The client_id and/or client_secret passed are incorrect."}  # fmt: skip
            if grant is None or _s256(form.get("code_verifier", "")) != grant.challenge:
                return 200, {"error": "bad_verification_code",
                             "error_description": "The code passed is incorrect or expired."}  # fmt: skip
            self.state.issued[f"at-{grant.code}"] = grant
            return 200, {
                "access_token": f"at-{grant.code}",
                "token_type": "bearer",
                "scope": "read:user,user:email",
            }
        return 404, {"error": "not_found"}
