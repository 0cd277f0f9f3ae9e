"""A provider type as data: where its endpoints are, how it takes client credentials, what
its errors mean, whether it sends ID tokens, and where the user is in its answers.

The one flow (flow.py) reads a `Profile`; kakao.py, oidc.py and github.py are tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: A path into a JSON document: ("kakao_account", "email").
Path = tuple[str, ...]

#: How the client authenticates at the token endpoint (RFC 6749 §2.3.1; OIDC Core §9).
ClientAuth = Literal["client_secret_basic", "client_secret_post", "none"]

#: When ID tokens come: "always" (OIDC); "if_scoped": required when `openid` is among the
#: scopes, validated whenever one comes (Kakao); "never" (GitHub).
OpenId = Literal["always", "if_scoped", "never"]

#: RFC 6749 §5.2 token-endpoint errors, as our stable codes; every profile starts here.
OAUTH_ERRORS: Mapping[str, str] = {
    "invalid_grant": "invalid_grant",
    "invalid_client": "invalid_client",
    "unauthorized_client": "invalid_client",
}


@dataclass(frozen=True)
class Claims:
    """Where the user is in the profile document: the userinfo answer over the ID token's
    claims (the claims alone when the provider has no userinfo endpoint)."""

    subject: Path
    #: Kakao and GitHub name users by a JSON integer, OIDC by a string `sub`.
    subject_type: type[int] | type[str]
    email: Path | None
    #: Every one must be JSON `true` for the email to count as verified.
    email_verified: tuple[Path, ...]
    #: The first non-empty string is the display name.
    names: tuple[Path, ...]
    #: An endpoint answering a list of {email, primary, verified} (GitHub's /user/emails):
    #: the email is the verified primary one there, never the profile's.
    email_list: str | None = None


@dataclass(frozen=True)
class Profile:
    type: str
    default_scopes: tuple[str, ...]
    claims: Claims
    #: Documented URLs by name (authorize, token, userinfo, emails, jwks); the providers
    #: file's `endpoints` override them. Empty with `discovery`.
    endpoints: Mapping[str, str] = field(default_factory=dict)
    #: The issuer identifier (ID tokens' `iss`, RFC 9207's `iss`); the file's `issuer` wins.
    issuer: str | None = None
    #: Endpoints, issuer and client authentication from OIDC Discovery at `<issuer>`.
    discovery: bool = False
    #: Client authentication methods the provider takes (discovery overrides).
    client_auth: tuple[str, ...] = ("client_secret_post",)
    secret_required: bool = True
    scope_separator: str = " "
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    openid: OpenId = "never"
    #: The token answer's fields naming an error, most specific first, and what the
    #: provider's own values mean (over OAUTH_ERRORS).
    token_error_fields: tuple[str, ...] = ("error",)
    token_errors: Mapping[str, str] = field(default_factory=dict)
    #: Sent on userinfo and email-list calls (GitHub's REST API version).
    api_headers: Mapping[str, str] = field(default_factory=dict)

    def token_error(self, body: Any) -> str | None:
        """Our stable code for a token answer's error, if it names one we know."""
        if not isinstance(body, dict):
            return None
        for name in self.token_error_fields:
            value = body.get(name)
            if isinstance(value, str):
                code = self.token_errors.get(value) or OAUTH_ERRORS.get(value)
                if code is not None:
                    return code
        return None


def pick(document: Mapping[str, Any], path: Path) -> Any:
    """The value at `path` in `document`, or None."""
    value: Any = document
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
