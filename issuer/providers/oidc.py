"""Any OpenID Connect provider, configured by discovery (Google, Kakao OIDC, Keycloak, …).

Endpoints, the issuer and the client authentication methods come from
`<issuer>/.well-known/openid-configuration` (discovery.py); every login brings an ID
token, and userinfo, when the provider has it, must name the same `sub`.
"""

from __future__ import annotations

from .profile import Claims, Profile

OIDC = Profile(
    type="oidc",
    default_scopes=("openid", "email", "profile"),
    discovery=True,
    openid="always",
    claims=Claims(
        subject=("sub",),
        subject_type=str,
        email=("email",),
        email_verified=(("email_verified",),),
        names=(("name",),),
    ),
)
