"""The provider types a providers file may name, each a data table."""

from __future__ import annotations

from .github import GITHUB
from .kakao import KAKAO
from .oidc import OIDC
from .profile import Profile

PROFILES: dict[str, Profile] = {p.type: p for p in (KAKAO, OIDC, GITHUB)}
TYPES = tuple(PROFILES)
