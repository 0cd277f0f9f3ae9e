"""GitHub (OAuth app). The user is GitHub's numeric `id`; the email is the verified
primary one from `/user/emails`, never an unverified or merely public address.

GitHub answers token errors with status 200 and an `error` field
(`bad_verification_code`, `incorrect_client_credentials`, `redirect_uri_mismatch`).
"""

from __future__ import annotations

from .profile import Claims, Profile

GITHUB = Profile(
    type="github",
    default_scopes=("read:user", "user:email"),
    endpoints={
        "authorize": "https://github.com/login/oauth/authorize",
        "token": "https://github.com/login/oauth/access_token",
        "userinfo": "https://api.github.com/user",
        "emails": "https://api.github.com/user/emails",
    },
    authorize_params={"allow_signup": "true"},
    token_errors={
        "bad_verification_code": "invalid_grant",
        "incorrect_client_credentials": "invalid_client",
        "redirect_uri_mismatch": "redirect_uri_mismatch",
    },
    api_headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
    claims=Claims(
        subject=("id",),
        subject_type=int,
        email=None,
        email_verified=(),
        names=(("name",), ("login",)),
        email_list="emails",
    ),
)
