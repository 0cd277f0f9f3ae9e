"""Kakao Login (REST API), with Kakao's OIDC ID token when `openid` is among the scopes.

Endpoints as Kakao documents them: authorize at kauth.kakao.com/oauth/authorize, token at
kauth.kakao.com/oauth/token (form body, client secret in the body when the app has one,
PKCE `code_verifier`), profile at kapi.kakao.com/v2/user/me. Scopes are comma-separated.
The user is Kakao's numeric `id`; the email counts only when Kakao says it is both valid
and verified. Token errors carry a Kakao `error_code` (KOE…), mapped to our stable codes.
"""

from __future__ import annotations

from .profile import Claims, Profile

KAKAO = Profile(
    type="kakao",
    default_scopes=("openid", "profile_nickname", "account_email"),
    endpoints={
        "authorize": "https://kauth.kakao.com/oauth/authorize",
        "token": "https://kauth.kakao.com/oauth/token",
        "userinfo": "https://kapi.kakao.com/v2/user/me",
        "jwks": "https://kauth.kakao.com/.well-known/jwks.json",
    },
    issuer="https://kauth.kakao.com",
    # The client secret is optional in a Kakao app; without one the client is public.
    secret_required=False,
    scope_separator=",",
    openid="if_scoped",
    token_error_fields=("error_code", "error"),
    token_errors={
        "KOE320": "invalid_grant",  # authorization code not found, expired or used
        "KOE303": "redirect_uri_mismatch",
        "KOE010": "invalid_client",  # bad client secret
        "KOE101": "invalid_client",  # unknown app key
    },
    claims=Claims(
        subject=("id",),
        subject_type=int,
        email=("kakao_account", "email"),
        email_verified=(
            ("kakao_account", "is_email_valid"),
            ("kakao_account", "is_email_verified"),
        ),
        names=(("kakao_account", "profile", "nickname"), ("properties", "nickname")),
    ),
)
