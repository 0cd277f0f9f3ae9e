"""Property-based fuzzing of what clients control: no input ever yields a 5xx."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..harness import VerifierProcess

# What an HTTP client can put in a header value: visible ASCII, space, tab, obs-text.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=300,
).map(str.strip)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
header_fields = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["EdDSA", "ES256", "HS256", "none", "RS256", ""]) | json_values,
        "typ": st.sampled_from(["at+jwt", "JWT", "application/at+jwt"]) | json_values,
        "kid": st.sampled_from(["test-key-1", "../../etc/passwd", ""]) | json_values,
        "crit": json_values,
    },
)
jwt_like = st.builds(
    lambda h, p, s: f"{_b64(json.dumps(h).encode())}.{_b64(json.dumps(p).encode())}.{_b64(s)}",
    header_fields,
    st.dictionaries(
        st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "sid", "jti"]), json_values
    ),
    st.binary(max_size=80),
)
credentials = (
    header_text | jwt_like | st.builds("{}.{}.{}".format, header_text, header_text, header_text)
)

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def _status(http: httpx.Client, url: str, headers: list[tuple[str, str]]) -> int | None:
    raw = [(name.encode(), value.encode("latin-1")) for name, value in headers]  # obs-text too
    try:
        return http.get(url, headers=raw).status_code
    except httpx.LocalProtocolError:
        return None  # httpx refused to send it; no client could


@FUZZ
@given(
    scheme=st.sampled_from(["Bearer ", "bearer ", "BEARER ", "", "Basic "]), credential=credentials
)
def test_authorization_header(
    verifier: VerifierProcess, http: httpx.Client, scheme: str, credential: str
) -> None:
    status = _status(http, verifier.url + "/verify", [("Authorization", scheme + credential)])
    assert status in (None, 401)


@FUZZ
@given(
    cookie=st.lists(
        st.tuples(st.sampled_from(["authgate_session", "other", ""]), credentials | header_text),
        max_size=4,
    )
)
def test_cookie_header(
    verifier: VerifierProcess, http: httpx.Client, cookie: list[tuple[str, str]]
) -> None:
    value = "; ".join(f"{name}={val}" for name, val in cookie)
    status = _status(http, verifier.url + "/verify", [("Cookie", value)])
    assert status in (None, 401)


@FUZZ
@given(uri=header_text, host=header_text, method=header_text, policy=header_text, proto=header_text)
def test_request_description_headers(
    verifier: VerifierProcess,
    http: httpx.Client,
    uri: str,
    host: str,
    method: str,
    policy: str,
    proto: str,
) -> None:
    headers = [("X-Original-URI", uri), ("X-Forwarded-Host", host), ("X-Original-Method", method),
               ("X-Authgate-Policy", policy), ("X-Forwarded-Proto", proto)]  # fmt: skip
    status = _status(http, verifier.url + "/verify", headers)
    # Public rules answer 204 (anonymous), the rest 401 (no credential) or 403 (deny).
    assert status in (None, 204, 401, 403)
